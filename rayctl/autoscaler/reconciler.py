"""One autoscaler tick: observe (provider nodes joined with Ray's by instance id), decide (the
pure scheduler), act (launch with tags first, bootstrap in a bounded pool, drain then
terminate). Everything it knows comes from the provider's tags and Ray, so a restarted
monitor resumes half-done launches instead of repeating them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from rayctl.autoscaler.inputs import node_type_specs
from rayctl.autoscaler.scheduler import (
    Demand,
    NodeView,
    PlacementGroupDemand,
    PlacementStrategy,
    ScheduleReply,
    ScheduleRequest,
    TerminationCause,
    schedule,
)
from rayctl.autoscaler.status import (
    AutoscalerStatus,
    Backoff,
    BundleCount,
    Event,
    Infeasible,
    PlacementGroupView,
)
from rayctl.config.schema import ClusterConfig
from rayctl.errors import BootstrapError, ProviderError
from rayctl.providers.base import (
    Node,
    NodeKind,
    NodeProvider,
    NodeState,
    NodeStatus,
    recording,
)
from rayctl.runtime.bootstrap import Bootstrapper, HeadGate, NodeSpec, StageChange
from rayctl.runtime.ray_adapter import ClusterSnapshot, RayNode

log = logging.getLogger(__name__)

# Resources the scheduler does not place: per-node markers and Ray's object store.
_IGNORED = ("node:", "object_store_memory")


@dataclass(frozen=True)
class ReconcilerSettings:
    boot_threads: int = 8
    boot_timeout_s: float = 600.0  # a launch not ready by then is terminated
    backoff_base_s: float = 30.0  # after a failed launch of a type: 30 s, 60 s, ... capped
    backoff_cap_s: float = 600.0
    history: int = 30


@dataclass(frozen=True)
class Observation:
    """What the last tick saw and decided, for the status document."""

    demands: tuple[BundleCount, ...] = ()
    placement_groups: tuple[PlacementGroupView, ...] = ()
    constraints: tuple[BundleCount, ...] = ()
    infeasible: tuple[Infeasible, ...] = ()


class Reconciler:
    def __init__(
        self,
        config: ClusterConfig,
        provider: NodeProvider,
        *,
        snapshot: Callable[[str], ClusterSnapshot],
        drain: Callable[[str, str, str], tuple[bool, str]],
        clock: Callable[[], float] = time.time,
        settings: ReconcilerSettings = ReconcilerSettings(),
    ) -> None:
        self._config = config
        self._provider = provider
        self._snapshot = snapshot
        self._drain = drain
        self._clock = clock
        self._settings = settings
        self._types = node_type_specs(config)
        self._bootstrapper = Bootstrapper(config, on_stage=recording(provider, self._on_stage))
        self._pool = ThreadPoolExecutor(settings.boot_threads, thread_name_prefix="bootstrap")
        self._booting: dict[str, tuple[Future, float, str]] = {}  # id -> (future, since, type)
        self.events: deque[Event] = deque(maxlen=settings.history)
        self.failures: deque[Event] = deque(maxlen=settings.history)
        self.backoff: dict[str, Backoff] = {}
        self.observed = Observation()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _on_stage(self, node: Node, change: StageChange) -> None:
        log.info("bootstrap", extra={"node_id": node.id, "stage": change.stage.value})

    def _event(self, action: str, what: str, reason: str) -> None:
        event = Event(at=self._clock(), action=action, what=what, reason=reason)
        (self.failures if action == "failed" else self.events).append(event)
        log.info("%s %s: %s", action, what, reason)

    # -- the tick ------------------------------------------------------------------------

    def tick(self) -> ScheduleReply | None:
        now = self._clock()
        nodes = self._provider.list_nodes()
        head = next((n for n in nodes if n.kind is NodeKind.HEAD), None)
        if head is None:
            log.warning("no head node: nothing to reconcile")
            return None
        gcs = head.gcs_address
        snap = self._snapshot(gcs)
        alive = {r.instance_id: r for r in snap.nodes if r.alive}
        self._learn_resources(nodes, alive)
        self._harvest_boots(now)
        workers = self._sync_workers([n for n in nodes if n.kind is NodeKind.WORKER], head, alive)

        reply = schedule(self._request([head, *workers], alive, snap))
        self._observe(snap, reply)
        self._launch(reply, head, now)
        self._terminate(reply, workers, alive, gcs)
        self._time_out_boots(now)
        return reply

    def _learn_resources(self, nodes: list[Node], alive: dict[str, RayNode]) -> None:
        """A node type whose resources the config leaves to Ray to detect (on-prem hosts)
        takes those of its first node seen in Ray: the scheduler cannot plan without them."""
        for node in nodes:
            spec = self._types.get(node.node_type)
            ray = alive.get(node.id)
            if spec is not None and not spec.resources and ray is not None:
                self._types[node.node_type] = replace(spec, resources=_schedulable(ray.total))

    def _sync_workers(
        self, workers: list[Node], head: Node, alive: dict[str, RayNode]
    ) -> list[Node]:
        """Resume bootstraps a previous monitor left half done; remove workers whose Ray
        died or whose bootstrap failed. Returns the workers that stay."""
        kept, gone = [], []
        for node in workers:
            if node.state is NodeState.STOPPED and node.id not in self._booting:
                gone.append((node, "its Ray is gone"))  # even before Ray notices
            elif node.id in self._booting or node.id in alive:
                kept.append(node)
            elif node.status is NodeStatus.FAILED:
                gone.append((node, "bootstrap failed"))
            elif node.status is NodeStatus.READY:
                gone.append((node, "its Ray is gone"))
            else:
                self._boot(node, head)
                kept.append(node)
        if gone:
            self._provider.terminate_nodes([n.id for n, _ in gone])
            for node, why in gone:
                self._event("terminate", node.id, why)
        return kept

    def _request(
        self, nodes: list[Node], alive: dict[str, RayNode], snap: ClusterSnapshot
    ) -> ScheduleRequest:
        views = []
        for node in nodes:
            ray = alive.get(node.id)
            if ray is None:
                views.append(
                    NodeView(node.id, node.node_type, node.kind is NodeKind.HEAD, pending=True)
                )
                continue
            total = _schedulable(ray.total)
            views.append(
                NodeView(
                    node.id,
                    node.node_type,
                    node.kind is NodeKind.HEAD,
                    available={k: v - ray.used.get(k, 0.0) for k, v in total.items()},
                    total=total,
                    idle_s=ray.idle_s,
                )
            )
        config = self._config
        return ScheduleRequest(
            node_types=self._types,
            max_workers=config.worker_limit,
            nodes=views,
            demands=[Demand(_schedulable(b), c) for b, c in snap.demands],
            placement_groups=[
                PlacementGroupDemand(PlacementStrategy(s), tuple(_schedulable(b) for b in bs))
                for s, bs in snap.placement_groups
            ],
            constraints=[Demand(_schedulable(b), c) for b, c in snap.constraints],
            upscaling_speed=config.upscaling_speed,
            idle_timeout_s=config.idle_timeout_minutes * 60,
        )

    def _observe(self, snap: ClusterSnapshot, reply: ScheduleReply) -> None:
        self.observed = Observation(
            demands=tuple(BundleCount(bundle=b, count=c) for b, c in snap.demands),
            placement_groups=tuple(
                PlacementGroupView(strategy=s, bundles=list(bs)) for s, bs in snap.placement_groups
            ),
            constraints=tuple(BundleCount(bundle=b, count=c) for b, c in snap.constraints),
            infeasible=tuple(
                Infeasible(bundle=dict(i.bundle), count=i.count, reason=i.reason)
                for i in reply.infeasible
            ),
        )

    # -- acting -------------------------------------------------------------------------

    def _launch(self, reply: ScheduleReply, head: Node, now: float) -> None:
        for launch in reply.launches:
            backoff = self.backoff.get(launch.node_type)
            if backoff and backoff.until > now:
                continue
            spec = NodeSpec.of(self._config, launch.node_type, NodeKind.WORKER)
            try:
                created = self._provider.create_nodes(
                    launch.node_type, launch.count, spec.launch_tags(f"{now:.0f}")
                )
            except ProviderError as exc:
                self._failed(launch.node_type, f"{launch.count} x {launch.node_type}", str(exc))
                continue
            self._event("launch", f"{launch.count} x {launch.node_type}", f"for {launch.reason}")
            for node in created:
                self._boot(node, head)

    def _boot(self, node: Node, head: Node) -> None:
        future = self._pool.submit(
            self._bootstrapper.bootstrap, node, self._provider, HeadGate.of(head)
        )
        self._booting[node.id] = (future, self._clock(), node.node_type)

    def _harvest_boots(self, now: float) -> None:
        for node_id, (future, _since, node_type) in list(self._booting.items()):
            if not future.done():
                continue
            del self._booting[node_id]
            error = future.exception()
            if error is None:
                self.backoff.pop(node_type, None)
                self._event("ready", node_id, node_type)
                continue
            detail = error.detail if isinstance(error, BootstrapError) else repr(error)
            self._failed(node_type, node_id, detail.strip().splitlines()[-1] if detail else "")
            self._provider.terminate_nodes([node_id])

    def _failed(self, node_type: str, what: str, reason: str) -> None:
        previous = self.backoff.get(node_type)
        failures = previous.failures + 1 if previous else 1
        delay = min(
            self._settings.backoff_cap_s, self._settings.backoff_base_s * 2 ** (failures - 1)
        )
        self.backoff[node_type] = Backoff(failures=failures, until=self._clock() + delay)
        self._event("failed", what, f"{reason} (backing off {node_type} for {delay:.0f} s)")

    def _time_out_boots(self, now: float) -> None:
        for node_id, (_future, since, node_type) in list(self._booting.items()):
            if now - since > self._settings.boot_timeout_s:
                del self._booting[node_id]
                self._provider.terminate_nodes([node_id])
                self._failed(node_type, node_id, f"not ready after {now - since:.0f} s")

    def _terminate(
        self,
        reply: ScheduleReply,
        workers: list[Node],
        alive: dict[str, RayNode],
        gcs: str,
    ) -> None:
        ids = []
        for term in reply.terminate:
            ray = alive.get(term.id)
            if term.cause is TerminationCause.IDLE and ray is not None and ray.ray_node_id:
                accepted, why = self._drain(gcs, ray.ray_node_id, f"rayctl: {term.detail}")
                if not accepted:
                    self._event("kept", term.id, f"drain refused: {why}")
                    continue
            ids.append(term.id)
            self._booting.pop(term.id, None)
        if ids:
            self._provider.terminate_nodes(ids)
            reasons = {t.id: f"{t.cause.value}: {t.detail}" for t in reply.terminate}
            for node_id in ids:
                self._event("terminate", node_id, reasons[node_id])

    def status_document(self) -> AutoscalerStatus:
        observed = self.observed
        return AutoscalerStatus(
            updated_at=self._clock(),
            booting=sorted(self._booting),
            demands=list(observed.demands),
            placement_groups=list(observed.placement_groups),
            constraints=list(observed.constraints),
            infeasible=list(observed.infeasible),
            events=list(self.events),
            failures=list(self.failures),
            backoff=dict(self.backoff),
        )


def _schedulable(resources: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in resources.items() if not k.startswith(_IGNORED)}
