"""The fake provider: nodes are records, and Ray is simulated from them.

A node is created by a record and terminated by deleting it. Its "boot" (FakeRay.boot) marks
it booted; Ray then lists it `boot_s` later (by the injected clock), idle unless told it is
busy. Pending demand is whatever the simulation is given. Faults come from the config and
can be changed at run time through `faults`: capacity and quota errors per type, throttled
calls, boots that hang or fail, terminations that fail, preemption (a node vanishes), and a
node whose Ray died while the provider still runs it.

Records live in memory, or in a JSON file under a lock when `state_file` is set, so that a
monitor process and the CLI share them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from rayctl.config.schema import ClusterConfig
from rayctl.errors import (
    BootstrapError,
    CapacityError,
    ProviderError,
    QuotaError,
    TerminationFailed,
    TransientError,
)
from rayctl.paths import write_atomic
from rayctl.providers.base import Node, NodeKind, NodeState, NodeStatus, RayStart, Tag
from rayctl.providers.fake.config import FakeProviderConfig
from rayctl.runtime.ray_adapter import Bundle, ClusterSnapshot, RayNode
from rayctl.runtime.runner import CommandRunner

_HUNG_BOOT_POLL_S = 0.05


@dataclass
class Faults:
    capacity_errors: dict[str, int] = field(default_factory=dict)  # type -> launches to fail
    quota_errors: dict[str, int] = field(default_factory=dict)
    throttle_every: int = 0  # every Nth call fails with TransientError
    hung_boot_types: set[str] = field(default_factory=set)
    failed_boot_types: set[str] = field(default_factory=set)
    unterminatable_types: set[str] = field(default_factory=set)
    unterminatable_ids: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, settings: FakeProviderConfig) -> Faults:
        return cls(
            capacity_errors=dict(settings.capacity_errors),
            quota_errors=dict(settings.quota_errors),
            throttle_every=settings.throttle_every,
            hung_boot_types=set(settings.hung_boot_types),
            failed_boot_types=set(settings.failed_boot_types),
            unterminatable_types=set(settings.unterminatable_types),
        )


@dataclass
class _State:
    """Everything the fake keeps: node records and the simulated Ray's side."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    demands: list[tuple[Bundle, int]] = field(default_factory=list)
    placement_groups: list[tuple[str, list[Bundle]]] = field(default_factory=list)
    constraints: list[tuple[Bundle, int]] = field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "next_id": self.next_id,
            "demands": self.demands,
            "placement_groups": self.placement_groups,
            "constraints": self.constraints,
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> _State:
        return cls(
            nodes=dict(raw["nodes"]),
            next_id=int(raw["next_id"]),
            demands=[(dict(b), int(c)) for b, c in raw["demands"]],
            placement_groups=[(str(s), [dict(b) for b in bs]) for s, bs in raw["placement_groups"]],
            constraints=[(dict(b), int(c)) for b, c in raw["constraints"]],
        )


class FakeProvider:
    """A NodeProvider whose nodes are records. `calls` counts provider calls by method."""

    def __init__(
        self, config: ClusterConfig, *, home: Path, clock: Callable[[], float] = time.time
    ) -> None:
        settings = config.provider
        assert isinstance(settings, FakeProviderConfig)
        self.cluster_name = config.cluster_name
        self.clock = clock
        self.faults = Faults.of(settings)
        self.boot_s = settings.boot_s
        self.calls: Counter[str] = Counter()
        self._resources = {n: dict(t.resources) for n, t in config.available_node_types.items()}
        self._lock = threading.RLock()
        self._memory = _State()
        self._file = Path(settings.state_file) if settings.state_file else None
        self.ray = FakeRay(self)

    # -- state ------------------------------------------------------------------------

    @contextmanager
    def state(self) -> Iterator[_State]:
        """Read-modify-write of the fake's state (under a file lock when file-backed)."""
        with self._lock:
            if self._file is None:
                yield self._memory
                return
            with FileLock(f"{self._file}.lock", timeout=30):
                try:
                    state = _State.load(json.loads(self._file.read_text()))
                except FileNotFoundError:
                    state = _State()
                yield state
                write_atomic(self._file, json.dumps(state.dump()))

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        every = self.faults.throttle_every
        if every and sum(self.calls.values()) % every == 0:
            raise TransientError(f"fake: {method} throttled (every {every}th call)")

    @staticmethod
    def _node(record: Mapping[str, Any]) -> Node:
        return Node(
            id=record["id"],
            node_type=record["node_type"],
            kind=NodeKind(record["tags"][Tag.KIND]),
            state=NodeState.RUNNING,
            internal_ip=record["ip"],
            external_ip=None,
            tags=dict(record["tags"]),
            launched_at=record["launched_at"],
        )

    # -- NodeProvider -----------------------------------------------------------------

    def bootstrap(self) -> None:
        """Nothing to prepare."""

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        self._call("create_nodes")
        for errors, error in (
            (self.faults.capacity_errors, CapacityError),
            (self.faults.quota_errors, QuotaError),
        ):
            if errors.get(node_type, 0) > 0:
                errors[node_type] -= 1
                raise error(f"fake: no {error.__name__} left for {node_type}")
        created = []
        with self.state() as state:
            for _ in range(count):
                number, state.next_id = state.next_id, state.next_id + 1
                record = {
                    "id": f"fake-{number}",
                    "node_type": node_type,
                    # never contacted: an address in this machine's loopback range
                    "ip": f"127.1.{number // 250 % 250}.{number % 250 + 1}",
                    "tags": {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type},
                    "launched_at": self.clock(),
                    "booted_at": None,
                    "ray_dead": False,
                    "used": {},
                    "busy_since": None,
                }
                state.nodes[record["id"]] = record
                created.append(self._node(record))
        return created

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        self._call("list_nodes")
        with self.state() as state:
            records = list(state.nodes.values())
        return [
            self._node(r)
            for r in records
            if all(r["tags"].get(k) == v for k, v in tag_filters.items())
        ]

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        self._call("terminate_nodes")
        failed = {}
        with self.state() as state:
            for node_id in ids:
                record = state.nodes.get(node_id)
                if record is None:
                    continue
                if (
                    node_id in self.faults.unterminatable_ids
                    or record["node_type"] in self.faults.unterminatable_types
                ):
                    failed[node_id] = f"fake: {node_id} cannot be terminated"
                    continue
                del state.nodes[node_id]
        if failed:
            raise TerminationFailed(failed)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """`down --force`: the records go, whatever the faults say."""
        with self.state() as state:
            for node_id in ids:
                state.nodes.pop(node_id, None)

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags")
        with self.state() as state:
            if node_id in state.nodes:
                state.nodes[node_id]["tags"].update(tags)

    def runner(self, node: Node) -> CommandRunner:
        raise ProviderError("fake nodes run no commands: their boots are simulated (FakeRay)")

    def ray_start_args(self, node: Node) -> RayStart:
        return RayStart([])

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        return config, {}

    def cleanup(self) -> None:
        if self._file is not None:
            with self.state() as state:
                empty = not state.nodes
            if empty:
                self._file.unlink(missing_ok=True)

    # -- faults a test applies at run time -----------------------------------------------

    def preempt(self, node_id: str) -> None:
        """The node vanishes, as a preempted spot instance does."""
        with self.state() as state:
            state.nodes.pop(node_id, None)

    def kill_ray(self, node_id: str) -> None:
        """Ray reports the node dead while the provider still runs it."""
        with self.state() as state:
            state.nodes[node_id]["ray_dead"] = True


class FakeRay:
    """Ray's side of a fake cluster: the GCS snapshot, draining and node boots."""

    def __init__(self, provider: FakeProvider) -> None:
        self._provider = provider

    def set_demand(
        self,
        demands: Sequence[tuple[Bundle, int]] = (),
        placement_groups: Sequence[tuple[str, list[Bundle]]] = (),
        constraints: Sequence[tuple[Bundle, int]] = (),
    ) -> None:
        with self._provider.state() as state:
            state.demands = [(dict(b), c) for b, c in demands]
            state.placement_groups = [(s, [dict(b) for b in bs]) for s, bs in placement_groups]
            state.constraints = [(dict(b), c) for b, c in constraints]

    def set_used(self, node_id: str, used: Mapping[str, float]) -> None:
        """Resources in use on the node (busy while any is); idle time counts from release."""
        now = self._provider.clock()
        with self._provider.state() as state:
            record = state.nodes[node_id]
            record["used"] = dict(used)
            record["busy_since"] = now if used else None
            if not used:
                record["idle_since"] = now

    def snapshot(self, gcs_address: str) -> ClusterSnapshot:
        now = self._provider.clock()
        boot_s = self._provider.boot_s
        resources = self._provider._resources
        nodes = []
        with self._provider.state() as state:
            for record in state.nodes.values():
                booted = record["booted_at"]
                if booted is None or now < booted + boot_s:
                    continue
                used = record["used"]
                idle_since = record.get("idle_since") or booted + boot_s
                nodes.append(
                    RayNode(
                        instance_id=record["id"],
                        node_type=record["node_type"],
                        ip=record["ip"],
                        status="DEAD" if record["ray_dead"] else ("RUNNING" if used else "IDLE"),
                        idle_s=0.0 if used else max(0.0, now - idle_since),
                        total=dict(resources.get(record["node_type"], {})),
                        used=dict(used),
                        ray_node_id=f"ray-{record['id']}",
                    )
                )
            return ClusterSnapshot(
                nodes=nodes,
                demands=list(state.demands),
                placement_groups=list(state.placement_groups),
                constraints=list(state.constraints),
            )

    def drain(self, gcs_address: str, ray_node_id: str, message: str) -> tuple[bool, str]:
        """Refused while the node has resources in use, as GCS refuses a busy node."""
        node_id = ray_node_id.removeprefix("ray-")
        with self._provider.state() as state:
            record = state.nodes.get(node_id)
            if record is None:
                return False, "no such node"
            if record["used"]:
                return False, "the node is busy"
        return True, ""

    def boot(self, node: Node, head: Node, cancelled: threading.Event) -> None:
        """Bring the node up: it joins Ray `boot_s` later. A hung boot waits until it is
        cancelled (or the fault is lifted); a cancelled boot never touches the node again."""
        faults = self._provider.faults
        while node.node_type in faults.hung_boot_types and not cancelled.is_set():
            cancelled.wait(_HUNG_BOOT_POLL_S)  # hung until cancelled, or the fault is lifted
        if cancelled.is_set():
            raise BootstrapError(node.id, NodeStatus.STARTING_RAY.value, "the boot was cancelled")
        if node.node_type in faults.failed_boot_types:
            raise BootstrapError(node.id, NodeStatus.SETTING_UP.value, "fake: setup failed")
        with self._provider.state() as state:
            record = state.nodes.get(node.id)
            if record is None or cancelled.is_set():
                raise BootstrapError(node.id, NodeStatus.STARTING_RAY.value, "the node is gone")
            record["booted_at"] = self._provider.clock()
            record["tags"][Tag.STATUS] = NodeStatus.READY.value
