"""The decide step of a tick: pure (no I/O, no clock of its own). From what observe saw, it
chooses every action of the tick: boots to start or cancel, workers to terminate (directly,
or after Ray drains them), and launches per node type, each move checked against the
lifecycle. The scheduler picks launches and idle or surplus workers; this module adds what
the lifecycle needs (timeouts, failed and lost workers, retries) and keeps backed-off types
from launching so that their demand moves to other types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from rayctl.autoscaler.lifecycle import Phase, check_move
from rayctl.autoscaler.scheduler import (
    Demand,
    Launch,
    NodeTypeSpec,
    NodeView,
    PlacementGroupDemand,
    PlacementStrategy,
    ScheduleReply,
    ScheduleRequest,
    TerminationCause,
    schedule,
)
from rayctl.runtime.nodes import Node, NodeKind
from rayctl.runtime.ray_adapter import ClusterSnapshot, RayNode

# Resources the scheduler does not place: per-node markers and Ray's object store.
_IGNORED = ("node:", "object_store_memory")


def schedulable(resources: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in resources.items() if not k.startswith(_IGNORED)}


@dataclass(frozen=True)
class WorkerView:
    """One worker as observed this tick."""

    node: Node
    phase: Phase
    ray: RayNode | None = None  # Ray's live record of it
    boot_since: float | None = None  # BOOTING: when this monitor started its boot
    retry_at: float | None = None  # TERMINATING: when the next attempt is due
    why: str = ""  # FAILED, LOST, TERMINATING: why


@dataclass(frozen=True)
class Observation:
    head: Node
    head_ray: RayNode | None
    workers: Sequence[WorkerView]
    snapshot: ClusterSnapshot


@dataclass(frozen=True)
class Policy:
    node_types: Mapping[str, NodeTypeSpec]
    max_workers: int
    upscaling_speed: float
    idle_timeout_s: float
    boot_timeout_s: float


@dataclass(frozen=True)
class Move:
    node_id: str
    source: Phase
    target: Phase
    reason: str


@dataclass(frozen=True)
class Decision:
    reply: ScheduleReply
    launches: dict[str, tuple[int, str]] = field(default_factory=dict)  # type -> (count, why)
    boots: list[Node] = field(default_factory=list)
    cancel_boots: list[str] = field(default_factory=list)
    terminate: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    drain: list[tuple[str, str, str]] = field(default_factory=list)  # (id, ray node id, why)
    timed_out: list[tuple[str, str, str]] = field(default_factory=list)  # (type, id, why)
    moves: list[Move] = field(default_factory=list)


def decide(
    observed: Observation, policy: Policy, *, backed_off: frozenset[str], now: float
) -> Decision:
    moves: list[Move] = []
    boots: list[Node] = []
    cancel: list[str] = []
    terminate: list[tuple[str, str]] = []
    timed_out: list[tuple[str, str, str]] = []

    def move(view: WorkerView, target: Phase, reason: str) -> None:
        check_move(view.node.id, view.phase, target)
        moves.append(Move(view.node.id, view.phase, target, reason))

    for view in observed.workers:
        node = view.node
        if view.phase is Phase.LAUNCHED:
            move(view, Phase.BOOTING, "launched, not booting")
            boots.append(node)
        elif view.phase is Phase.BOOTING:
            assert view.boot_since is not None
            waited = now - view.boot_since
            if waited > policy.boot_timeout_s:
                why = f"not ready after {waited:.0f} s"
                move(view, Phase.TERMINATING, why)
                cancel.append(node.id)
                terminate.append((node.id, why))
                timed_out.append((node.node_type, node.id, why))
        elif view.phase in (Phase.FAILED, Phase.LOST):
            move(view, Phase.TERMINATING, view.why)
            terminate.append((node.id, view.why))
        elif view.phase is Phase.TERMINATING:
            assert view.retry_at is not None
            if view.retry_at <= now:
                move(view, Phase.TERMINATING, f"retry: {view.why}")
                terminate.append((node.id, view.why))

    leaving = {node_id for node_id, _ in terminate}
    # A type whose boot just timed out is backed off from this tick on.
    backed_off = backed_off | {node_type for node_type, _, _ in timed_out}
    reply = schedule(_request(observed, policy, backed_off, leaving))
    by_type: dict[str, list[Launch]] = {}
    for launch in reply.launches:  # one provider call per type, with every reason
        by_type.setdefault(launch.node_type, []).append(launch)
    launches = {
        name: (sum(x.count for x in group), "; ".join(dict.fromkeys(x.reason for x in group)))
        for name, group in by_type.items()
    }

    views = {v.node.id: v for v in observed.workers}
    drain: list[tuple[str, str, str]] = []
    for term in reply.terminate:
        view = views[term.id]
        why = f"{term.cause.value}: {term.detail}"
        move(view, Phase.TERMINATING, why)
        if view.phase is Phase.BOOTING:
            cancel.append(term.id)
        if term.cause is TerminationCause.IDLE and view.ray is not None and view.ray.ray_node_id:
            drain.append((term.id, view.ray.ray_node_id, why))
        else:
            terminate.append((term.id, why))
    return Decision(
        reply=reply,
        launches=launches,
        boots=boots,
        cancel_boots=cancel,
        terminate=terminate,
        drain=drain,
        timed_out=timed_out,
        moves=moves,
    )


def _request(
    observed: Observation, policy: Policy, backed_off: frozenset[str], leaving: set[str]
) -> ScheduleRequest:
    """The scheduler's view: the head and every worker that stays (launched and booting ones
    as pending); a backed-off type may keep its workers but gets no new ones."""
    views = [_node_view(observed.head, observed.head_ray)]
    counts: dict[str, int] = {}
    for view in observed.workers:
        if view.node.id in leaving or view.phase not in (
            Phase.LAUNCHED,
            Phase.BOOTING,
            Phase.READY,
        ):
            continue
        views.append(_node_view(view.node, view.ray if view.phase is Phase.READY else None))
        counts[view.node.node_type] = counts.get(view.node.node_type, 0) + 1
    types = dict(policy.node_types)
    for name in backed_off & types.keys():
        held = counts.get(name, 0)
        spec = types[name]
        types[name] = replace(
            spec, max_workers=min(spec.max_workers, held), min_workers=min(spec.min_workers, held)
        )
    snap = observed.snapshot
    return ScheduleRequest(
        node_types=types,
        max_workers=policy.max_workers,
        nodes=views,
        demands=[Demand(schedulable(b), c) for b, c in snap.demands],
        placement_groups=[
            PlacementGroupDemand(PlacementStrategy(s), tuple(schedulable(b) for b in bs))
            for s, bs in snap.placement_groups
        ],
        constraints=[Demand(schedulable(b), c) for b, c in snap.constraints],
        upscaling_speed=policy.upscaling_speed,
        idle_timeout_s=policy.idle_timeout_s,
    )


def _node_view(node: Node, ray: RayNode | None) -> NodeView:
    head = node.kind is NodeKind.HEAD
    if ray is None:
        return NodeView(node.id, node.node_type, head, pending=True)
    total = schedulable(ray.total)
    return NodeView(
        node.id,
        node.node_type,
        head,
        available={k: v - ray.used.get(k, 0.0) for k, v in total.items()},
        total=total,
        idle_s=ray.idle_s,
    )
