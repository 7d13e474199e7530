"""One autoscaler tick in three steps: observe (the provider's nodes joined with Ray's by
instance id, each worker in a lifecycle phase), decide (pure: rayctl.autoscaler.decide), act
(the only code here that calls the provider: launches tagged with a unique request id,
terminations batched and retried with backoff, boots in a bounded pool, drains through Ray).

Everything it needs to know comes from the provider's tags and Ray, plus what this monitor
is doing (boots in flight, terminations to retry, backoffs), so a restarted monitor resumes
half-done launches instead of repeating them. Boots, Ray and the clock are injected: the
monitor passes real bootstrap and Ray's GCS, tests and simulations the fake provider's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from rayctl.autoscaler.boots import BootFn
from rayctl.autoscaler.decide import Decision, Observation, Policy, WorkerView, decide, schedulable
from rayctl.autoscaler.inputs import node_type_specs
from rayctl.autoscaler.lifecycle import Phase
from rayctl.autoscaler.scheduler import ScheduleReply
from rayctl.autoscaler.status import (
    AutoscalerStatus,
    Backoff,
    BundleCount,
    Event,
    Infeasible,
    PlacementGroupView,
    Retry,
)
from rayctl.config.schema import ClusterConfig
from rayctl.errors import BootstrapError, ProviderError, TerminationFailed
from rayctl.providers.base import Node, NodeKind, NodeProvider, NodeState, NodeStatus
from rayctl.runtime.bootstrap import NodeSpec
from rayctl.runtime.ray_adapter import ClusterSnapshot, RayNode

log = logging.getLogger(__name__)

SnapshotFn = Callable[[str], ClusterSnapshot]
DrainFn = Callable[[str, str, str], tuple[bool, str]]


@dataclass(frozen=True)
class ReconcilerSettings:
    boot_threads: int = 8
    boot_timeout_s: float = 600.0  # a launch not ready by then is terminated
    backoff_base_s: float = 30.0  # after a failed launch of a type: 30 s, 60 s, ... capped
    backoff_cap_s: float = 600.0
    retry_base_s: float = 5.0  # after a failed termination: 5 s, 10 s, ... capped
    retry_cap_s: float = 300.0
    history: int = 30


@dataclass
class _Boot:
    future: Future[None]
    cancelled: threading.Event
    since: float
    node_type: str


@dataclass(frozen=True)
class _Seen:
    """What the last tick saw and decided, for the status document."""

    snapshot: ClusterSnapshot
    reply: ScheduleReply


class Reconciler:
    def __init__(
        self,
        config: ClusterConfig,
        provider: NodeProvider,
        *,
        snapshot: SnapshotFn,
        drain: DrainFn,
        boot: BootFn,
        clock: Callable[[], float] = time.time,
        settings: ReconcilerSettings = ReconcilerSettings(),
    ) -> None:
        self._config = config
        self._provider = provider
        self._snapshot = snapshot
        self._drain = drain
        self._boot_fn = boot
        self._clock = clock
        self._settings = settings
        self._types = node_type_specs(config)
        self._pool = ThreadPoolExecutor(settings.boot_threads, thread_name_prefix="bootstrap")
        self._booting: dict[str, _Boot] = {}
        self._boot_failed: dict[str, str] = {}  # id -> why, until the node is terminated
        self.terminating: dict[str, Retry] = {}
        self.backoff: dict[str, Backoff] = {}
        self.events: deque[Event] = deque(maxlen=settings.history)
        self.failures: deque[Event] = deque(maxlen=settings.history)
        self._seen: _Seen | None = None
        self.gcs_address: str | None = None  # the head's, as of the last tick

    def close(self) -> None:
        """Boots not started yet are dropped; running ones finish (the process waits for
        them as it exits), so a node whose Ray started also gets its tags."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wait_for_boots(self, timeout_s: float = 10.0) -> None:
        """Until every boot in flight has ended (tests and simulations)."""
        deadline = time.monotonic() + timeout_s
        for boot in list(self._booting.values()):
            boot.future.exception(timeout=max(0.0, deadline - time.monotonic()))

    def restore_history(self, events: list[Event], failures: list[Event]) -> None:
        """An earlier monitor's events, before this one's first tick (the newest are kept)."""
        self.events = deque(events, maxlen=self._settings.history)
        self.failures = deque(failures, maxlen=self._settings.history)

    def _event(self, action: str, what: str, reason: str) -> None:
        event = Event(at=self._clock(), action=action, what=what, reason=reason)
        (self.failures if action == "failed" else self.events).append(event)
        log.info("%s %s: %s", action, what, reason)

    # -- the tick ----------------------------------------------------------------------

    def tick(self, snapshot: ClusterSnapshot | None = None) -> Decision | None:
        """Observe, decide, act. A failed listing raises before anything is decided, so a
        tick that cannot see the cluster changes nothing. `snapshot`: Ray's state if the
        caller just read it."""
        now = self._clock()
        nodes = self._provider.list_nodes()
        head = next((n for n in nodes if n.kind is NodeKind.HEAD), None)
        if head is None:
            log.warning("no head node: nothing to reconcile")
            return None
        self.gcs_address = head.gcs_address
        snap = snapshot if snapshot is not None else self._snapshot(head.gcs_address)
        observed = self._observe(head, nodes, snap, now)
        policy = Policy(
            node_types=self._types,
            max_workers=self._config.worker_limit,
            upscaling_speed=self._config.upscaling_speed,
            idle_timeout_s=self._config.idle_timeout_minutes * 60,
            boot_timeout_s=self._settings.boot_timeout_s,
        )
        backed_off = frozenset(name for name, b in self.backoff.items() if b.until > now)
        decision = decide(observed, policy, backed_off=backed_off, now=now)
        self._seen = _Seen(snap, decision.reply)
        self._act(decision, head, now)
        return decision

    # -- observe -------------------------------------------------------------------------

    def _observe(
        self, head: Node, nodes: list[Node], snap: ClusterSnapshot, now: float
    ) -> Observation:
        alive: dict[str, RayNode] = {}
        dead: set[str] = set()
        for ray in snap.nodes:  # a restarted node registers again: the live record wins
            if ray.alive:
                alive[ray.instance_id] = ray
            else:
                dead.add(ray.instance_id)
        self._learn_resources(nodes, alive)
        self._harvest_boots()
        listed = {n.id for n in nodes}
        for node_id in [i for i in self._booting if i not in listed]:
            self._booting.pop(node_id).cancelled.set()  # preempted or removed: stop its boot
            self._event("vanished", node_id, "the provider no longer lists it")
        for node_id in [i for i in self.terminating if i not in listed]:
            del self.terminating[node_id]  # gone at last
            self._event("terminate", node_id, "confirmed gone")
        for node_id in [i for i in self._boot_failed if i not in listed]:
            del self._boot_failed[node_id]
        workers = [
            self._view(n, alive.get(n.id), n.id in dead) for n in nodes if n.kind is NodeKind.WORKER
        ]
        return Observation(head, alive.get(head.id), workers, snap)

    def _view(self, node: Node, ray: RayNode | None, ray_dead: bool) -> WorkerView:
        retry = self.terminating.get(node.id)
        if retry is not None:
            return WorkerView(node, Phase.TERMINATING, retry_at=retry.next_at, why=retry.reason)
        boot = self._booting.get(node.id)
        if boot is not None:
            return WorkerView(node, Phase.BOOTING, ray, boot_since=boot.since)
        if node.id in self._boot_failed:
            return WorkerView(node, Phase.FAILED, why=self._boot_failed[node.id])
        if ray is not None:
            return WorkerView(node, Phase.READY, ray)
        if node.status is NodeStatus.FAILED:
            return WorkerView(node, Phase.FAILED, why="bootstrap failed")
        if ray_dead or node.state is NodeState.STOPPED or node.status is NodeStatus.READY:
            return WorkerView(node, Phase.LOST, why="its Ray is gone")
        return WorkerView(node, Phase.LAUNCHED)

    def _learn_resources(self, nodes: list[Node], alive: dict[str, RayNode]) -> None:
        """A node type whose resources the config leaves to Ray to detect (on-prem hosts)
        takes those of its first node seen in Ray: the scheduler cannot plan without them."""
        for node in nodes:
            spec = self._types.get(node.node_type)
            ray = alive.get(node.id)
            if spec is not None and not spec.resources and ray is not None:
                self._types[node.node_type] = replace(spec, resources=schedulable(ray.total))

    def _harvest_boots(self) -> None:
        for node_id, boot in list(self._booting.items()):
            if not boot.future.done():
                continue
            del self._booting[node_id]
            error = boot.future.exception()
            if error is None:
                self.backoff.pop(boot.node_type, None)
                self._event("ready", node_id, boot.node_type)
                continue
            detail = error.detail if isinstance(error, BootstrapError) else repr(error)
            why = detail.strip().splitlines()[-1] if detail.strip() else "bootstrap failed"
            self._boot_failed[node_id] = f"bootstrap failed: {why}"
            self._failed(boot.node_type, node_id, why)

    # -- act -------------------------------------------------------------------------------

    def _act(self, decision: Decision, head: Node, now: float) -> None:
        for node_id in decision.cancel_boots:
            boot = self._booting.pop(node_id, None)
            if boot is not None:
                boot.cancelled.set()
        for node_type, node_id, why in decision.timed_out:
            self._failed(node_type, node_id, why)
        for node in decision.boots:
            self._start_boot(node, head)
        targets = list(decision.terminate)
        for node_id, ray_node_id, why in decision.drain:
            accepted, refusal = self._drain(head.gcs_address, ray_node_id, f"rayctl: {why}")
            if accepted:
                targets.append((node_id, why))
            else:
                self._event("kept", node_id, f"drain refused: {refusal}")
        self._terminate(targets, now)
        for node_type, (count, why) in decision.launches.items():
            self._launch(node_type, count, why, head)

    def _terminate(self, targets: list[tuple[str, str]], now: float) -> None:
        """One call for the tick's terminations; what the provider could not terminate is
        retried later with backoff, and blocks nothing else."""
        if not targets:
            return
        reasons = dict(targets)
        try:
            self._provider.terminate_nodes(list(reasons))
            failed: dict[str, str] = {}
        except TerminationFailed as exc:
            failed = exc.failed
        except ProviderError as exc:
            failed = dict.fromkeys(reasons, str(exc))
        for node_id, why in reasons.items():
            self._boot_failed.pop(node_id, None)
            if node_id not in failed:
                self.terminating.pop(node_id, None)
                self._event("terminate", node_id, why)
                continue
            previous = self.terminating.get(node_id)
            attempts = previous.attempts + 1 if previous else 1
            delay = min(
                self._settings.retry_cap_s, self._settings.retry_base_s * 2 ** (attempts - 1)
            )
            reason = previous.reason if previous else why
            self.terminating[node_id] = Retry(
                attempts=attempts, next_at=now + delay, reason=reason, error=failed[node_id]
            )
            self._event(
                "failed", node_id, f"cannot terminate ({failed[node_id]}); retry in {delay:.0f} s"
            )

    def _launch(self, node_type: str, count: int, why: str, head: Node) -> None:
        request = uuid.uuid4().hex[:12]  # unique per launch, kept in the nodes' tags
        tags = NodeSpec.of(self._config, node_type, NodeKind.WORKER).launch_tags(request)
        try:
            created = self._provider.create_nodes(node_type, count, tags)
        except ProviderError as exc:
            self._failed(node_type, f"{count} x {node_type}", str(exc))
            return
        self._event("launch", f"{count} x {node_type}", f"for {why} (request {request})")
        for node in created:
            self._start_boot(node, head)

    def _start_boot(self, node: Node, head: Node) -> None:
        cancelled = threading.Event()
        future = self._pool.submit(self._boot_fn, node, head, cancelled)
        self._booting[node.id] = _Boot(future, cancelled, self._clock(), node.node_type)

    def _failed(self, node_type: str, what: str, reason: str) -> None:
        previous = self.backoff.get(node_type)
        failures = previous.failures + 1 if previous else 1
        delay = min(
            self._settings.backoff_cap_s, self._settings.backoff_base_s * 2 ** (failures - 1)
        )
        self.backoff[node_type] = Backoff(failures=failures, until=self._clock() + delay)
        self._event("failed", what, f"{reason} (backing off {node_type} for {delay:.0f} s)")

    @property
    def last_snapshot(self) -> ClusterSnapshot | None:
        return self._seen.snapshot if self._seen else None

    # -- status ------------------------------------------------------------------------------

    def status_document(self) -> AutoscalerStatus:
        seen = self._seen
        snap = seen.snapshot if seen else ClusterSnapshot(nodes=[])
        infeasible = seen.reply.infeasible if seen else []
        return AutoscalerStatus(
            updated_at=self._clock(),
            booting=sorted(self._booting),
            demands=[BundleCount(bundle=b, count=c) for b, c in snap.demands],
            placement_groups=[
                PlacementGroupView(strategy=s, bundles=list(bs)) for s, bs in snap.placement_groups
            ],
            constraints=[BundleCount(bundle=b, count=c) for b, c in snap.constraints],
            infeasible=[
                Infeasible(bundle=dict(i.bundle), count=i.count, reason=i.reason)
                for i in infeasible
            ],
            events=list(self.events),
            failures=list(self.failures),
            backoff=dict(self.backoff),
            terminating=dict(self.terminating),
        )
