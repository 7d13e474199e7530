"""The autoscaler's policy: which nodes to launch and which to terminate. Pure: no I/O, no
clock, no randomness; the same request always gives the same reply.

It works on resource shapes x counts and on groups of identical nodes (same type, same free
resources), never one bundle or one node at a time, so 100,000 pending tasks over a few dozen
shapes cost a few thousand operations. The steps, in order:

1. drop nodes the config no longer allows (type removed, per-type or global max exceeded);
2. launch up to each type's min_workers;
3. request_resources constraints against the cluster's total capacity (usage ignored);
4. placement groups, each placed whole or not at all;
5. task and actor shapes: free capacity of running, pending and planned nodes first, then
   new nodes, choosing for each shape the type that needs the least launched capacity;
6. cap launches for demand by upscaling_speed (min_workers and constraints are not capped);
7. terminate workers idle past their timeout, unless min_workers, pending demand or a
   constraint needs them. The head is never terminated.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Resources = Mapping[str, float]
_EPS = 1e-9


class PlacementStrategy(enum.StrEnum):
    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_PACK = "STRICT_PACK"
    STRICT_SPREAD = "STRICT_SPREAD"


class TerminationCause(enum.StrEnum):
    IDLE = "idle"
    MAX_WORKERS = "max_workers"
    TYPE_REMOVED = "type_removed"


@dataclass(frozen=True, slots=True)
class NodeTypeSpec:
    name: str
    resources: Resources
    min_workers: int = 0
    max_workers: int = 0
    cost: float | None = None  # relative price; without it, capacity is measured by resources
    idle_timeout_s: float | None = None  # overrides the cluster's idle timeout


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    node_type: str
    is_head: bool = False
    pending: bool = False  # launched or bootstrapping, not yet in Ray
    available: Resources | None = None  # free resources; None: all of its type's
    total: Resources | None = None  # None: its type's resources
    idle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Demand:
    """`count` copies of a resource shape (tasks, actors, or constraint bundles)."""

    bundle: Resources
    count: int = 1


@dataclass(frozen=True, slots=True)
class PlacementGroupDemand:
    strategy: PlacementStrategy
    bundles: tuple[Resources, ...]


@dataclass(frozen=True)
class ScheduleRequest:
    node_types: Mapping[str, NodeTypeSpec]
    max_workers: int
    nodes: Sequence[NodeView]
    demands: Sequence[Demand] = ()
    placement_groups: Sequence[PlacementGroupDemand] = ()
    constraints: Sequence[Demand] = ()
    upscaling_speed: float = 1.0
    idle_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Launch:
    node_type: str
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class Termination:
    id: str
    cause: TerminationCause
    detail: str


@dataclass(frozen=True, slots=True)
class Infeasible:
    bundle: Resources
    count: int
    reason: str


@dataclass(frozen=True)
class ScheduleReply:
    launches: list[Launch] = field(default_factory=list)
    terminate: list[Termination] = field(default_factory=list)
    infeasible: list[Infeasible] = field(default_factory=list)

    @property
    def launch(self) -> dict[str, int]:
        """Nodes to launch per type."""
        totals: Counter[str] = Counter()
        for launch in self.launches:
            totals[launch.node_type] += launch.count
        return dict(sorted(totals.items()))


def schedule(request: ScheduleRequest) -> ScheduleReply:
    return _Scheduler(request).run()


# -- internals ---------------------------------------------------------------------------

Vec = tuple[float, ...]
_THROTTLED = "held back by upscaling_speed"
_LOOKAHEAD = 16  # later shapes considered when choosing the node for a shape's remainder
_MANY = 1 << 40  # copies of an empty shape that "fit" anywhere


def format_bundle(bundle: Resources) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(bundle.items())) + "}"


def _sub(free: Vec, shape: Vec, copies: int) -> Vec:
    return tuple(f - s * copies for f, s in zip(free, shape, strict=True))


def _add(a: Vec, b: Vec) -> Vec:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _copies(free: Vec, shape: Vec) -> int:
    """How many copies of `shape` fit into `free`."""
    fit = _MANY
    for f, s in zip(free, shape, strict=True):
        if s > _EPS:
            fit = min(fit, int((f + _EPS) // s))
            if fit == 0:
                return 0
    return fit


@dataclass
class _Group:
    """Nodes of one type with the same total and free resources, pending or not."""

    node_type: str
    pending: bool
    total: Vec
    free: Vec
    ids: list[str]


class _Scheduler:
    def __init__(self, request: ScheduleRequest) -> None:
        self.req = request
        self.types = request.node_types
        names: set[str] = set()
        for t in self.types.values():
            names.update(t.resources)
        for d in [*request.demands, *request.constraints]:
            names.update(d.bundle)
        for pg in request.placement_groups:
            for b in pg.bundles:
                names.update(b)
        for n in request.nodes:
            names.update(n.available or {})
            names.update(n.total or {})
        self.names = sorted(names)
        self.type_vec = {name: self.vec(t.resources) for name, t in self.types.items()}
        # The most of each resource any type has: resources are compared in these units.
        self.scale = [
            max((v[i] for v in self.type_vec.values()), default=0.0) for i in range(len(self.names))
        ]
        self.capacity = self._capacity_measure()
        self.later: list[tuple[Vec, int]] = []  # task shapes still to place, for lookahead
        self.terminate: list[Termination] = []
        self.infeasible: list[Infeasible] = []
        self.groups: list[_Group] = []  # real free capacity, planned nodes included
        self.counts: Counter[str] = Counter()  # workers per type, planned ones included
        self.launches: list[Launch] = []
        self.room: dict[str, int] = {}  # nodes of a type that may still go pending for demand
        self.needed: set[str] = set()  # node ids that demand or constraints use
        self.planned = 0  # ids handed out to planned nodes

    def vec(self, resources: Resources | None) -> Vec:
        resources = resources or {}
        return tuple(float(resources.get(n, 0.0)) for n in self.names)

    def _capacity_measure(self) -> dict[str, float]:
        """What launching one node of a type costs: its `cost` when every type has one,
        else its resources, each normalised by the largest amount any type has."""
        if self.types and all(t.cost is not None for t in self.types.values()):
            return {name: float(t.cost or 0.0) for name, t in self.types.items()}
        scale = self.scale
        return {
            name: sum(x / s for x, s in zip(v, scale, strict=True) if s > 0)
            for name, v in self.type_vec.items()
        }

    def run(self) -> ScheduleReply:
        live = self._enforce_limits()
        self._build_groups(live)
        self._init_upscaling_room(live)
        self._launch_min_workers()
        self._place_constraints()
        for pg in sorted(self.req.placement_groups, key=_strictest_first):
            self._place_placement_group(pg)
        self._place_demands()
        self._terminate_idle(live)
        return ScheduleReply(self.launches, self.terminate, self.infeasible)

    # -- 1. limits ----------------------------------------------------------------------

    def _total(self, node: NodeView) -> Vec:
        if node.total is not None:
            return self.vec(node.total)
        return self.type_vec.get(node.node_type, self.vec({}))

    def _is_idle(self, node: NodeView) -> bool:
        if node.pending:
            return False
        free = self.vec(node.available) if node.available is not None else self._total(node)
        return all(abs(a - b) < _EPS for a, b in zip(free, self._total(node), strict=True))

    def _enforce_limits(self) -> list[NodeView]:
        """Terminate workers whose type is gone or that exceed a max; return the rest."""
        workers = [n for n in self.req.nodes if not n.is_head]
        drop: dict[str, Termination] = {}

        def least_needed(nodes: list[NodeView]) -> list[NodeView]:
            # Idle longest first, then pending (no work on them yet), busy ones last.
            rank = {n.id: 0 if self._is_idle(n) else 1 if n.pending else 2 for n in nodes}
            return sorted(nodes, key=lambda n: (rank[n.id], -n.idle_s, n.id))

        by_type: dict[str, list[NodeView]] = defaultdict(list)
        for node in workers:
            if node.node_type in self.types:
                by_type[node.node_type].append(node)
            else:
                drop[node.id] = Termination(
                    node.id, TerminationCause.TYPE_REMOVED, f"node type {node.node_type} removed"
                )
        for name, nodes in sorted(by_type.items()):
            limit = self.types[name].max_workers
            for node in least_needed(nodes)[: max(0, len(nodes) - limit)]:
                drop[node.id] = Termination(
                    node.id,
                    TerminationCause.MAX_WORKERS,
                    f"{name} has {len(nodes)} workers, max_workers {limit}",
                )
        kept = [n for n in workers if n.id not in drop]
        per_type = Counter(n.node_type for n in kept)
        excess = len(kept) - self.req.max_workers
        candidates = least_needed(kept)
        while excess > 0:
            # Take nodes of types above their min_workers first, so both limits can hold.
            node = next(
                (
                    n
                    for n in candidates
                    if per_type[n.node_type] > self.types[n.node_type].min_workers
                ),
                candidates[0],
            )
            candidates.remove(node)
            per_type[node.node_type] -= 1
            excess -= 1
            drop[node.id] = Termination(
                node.id,
                TerminationCause.MAX_WORKERS,
                f"cluster has {len(kept)} workers, max_workers {self.req.max_workers}",
            )
        self.terminate.extend(sorted(drop.values(), key=lambda t: t.id))
        return [n for n in self.req.nodes if n.id not in drop]

    def _build_groups(self, live: list[NodeView]) -> None:
        index: dict[tuple[str, bool, Vec, Vec], _Group] = {}
        for node in sorted(live, key=lambda n: (n.pending, n.id)):
            if not node.is_head:
                self.counts[node.node_type] += 1
            total = self._total(node)
            free = self.vec(node.available) if node.available is not None else total
            key = (node.node_type, node.pending, total, free)
            if key not in index:
                index[key] = _Group(node.node_type, node.pending, total, free, [])
                self.groups.append(index[key])
            index[key].ids.append(node.id)

    # -- launching ----------------------------------------------------------------------

    def _init_upscaling_room(self, live: list[NodeView]) -> None:
        """At most max(5, speed x running) nodes of a type pending at once. Launches for
        min_workers and constraints are not capped, but they are pending too."""
        running: Counter[str] = Counter()
        pending: Counter[str] = Counter()
        for node in live:
            if not node.is_head:
                (pending if node.pending else running)[node.node_type] += 1
        self.room = {
            name: max(5, math.floor(self.req.upscaling_speed * running[name])) - pending[name]
            for name in self.types
        }

    def _slots(self, name: str) -> int:
        """How many more workers of `name` the per-type and the global max allow."""
        per_type = self.types[name].max_workers - self.counts[name]
        return max(0, min(per_type, self.req.max_workers - sum(self.counts.values())))

    def _new_nodes(self, name: str, count: int, reason: str) -> _Group:
        ids = [f"planned-{self.planned + i}" for i in range(count)]
        self.planned += count
        self.counts[name] += count
        self.room[name] -= count
        self.launches.append(Launch(name, count, reason))
        group = _Group(name, True, self.type_vec[name], self.type_vec[name], ids)
        self.groups.append(group)
        return group

    def _launch_min_workers(self) -> None:
        for name, spec in sorted(self.types.items()):
            short = min(spec.min_workers - self.counts[name], self._slots(name))
            if short > 0:
                self._new_nodes(name, short, f"min_workers {spec.min_workers}")

    def _fitting_types(self, shape: Vec) -> list[str]:
        return sorted(name for name, v in self.type_vec.items() if _copies(v, shape) > 0)

    def _candidate_types(self, shape: Vec, names: list[str] | None = None) -> list[str]:
        """Of `names` (default: every type that can hold `shape`), the ones to launch for it:
        GPU types only if no other type will do."""
        fits = self._fitting_types(shape) if names is None else names
        if "GPU" in self.names and shape[self.names.index("GPU")] <= _EPS:
            gpu = self.names.index("GPU")
            return [name for name in fits if self.type_vec[name][gpu] <= _EPS] or fits
        return fits

    def _launch_for(
        self, bins: list[_Group], shape: Vec, count: int, reason: str, *, capped: bool
    ) -> tuple[int, bool]:
        """Launch nodes for `count` copies of `shape` and place the copies in `bins`: whole
        nodes of the type with the least capacity per copy (then the most copies per node),
        and for the remainder the type that holds it for the least capacity. Returns the
        copies left unplaced, and whether upscaling_speed (not max_workers) held them back:
        those get nodes on a later tick."""
        while count > 0:
            options = []  # (capacity per copy, -copies per node, name, nodes allowed)
            throttled = False
            # GPU types for non-GPU work only when every other type that fits is at its max.
            launchable = [n for n in self._fitting_types(shape) if self._slots(n)]
            for name in self._candidate_types(shape, launchable):
                allowed = self._slots(name)
                if capped and allowed:
                    allowed = min(allowed, max(0, self.room[name]))
                    throttled |= allowed == 0
                if allowed:
                    per_node = _copies(self.type_vec[name], shape)
                    per_copy = round(self.capacity[name] / per_node, 9)
                    options.append((per_copy, -per_node, name, allowed))
            if not options:
                return count, throttled
            _, neg_per_node, name, allowed = min(options)
            nodes = count // -neg_per_node
            if nodes == 0:  # less than a node's worth left: the cheapest for what it holds
                _, nodes, name, allowed = min(
                    self._remainder_cost(n, -p, shape, count, a) for _, p, n, a in options
                )
            group = self._new_nodes(name, min(nodes, allowed), reason)
            if bins is not self.groups:  # placing into a copy (constraints): mirror the group
                group = _Group(name, True, group.total, group.total, list(group.ids))
                bins.append(group)
            count -= self._place(bins, [group], shape, count)
        return 0, False

    def _remainder_cost(
        self, name: str, per_node: int, shape: Vec, count: int, allowed: int
    ) -> tuple[float, int, str, int]:
        """Capacity per unit of demand held by the nodes of `name` that take the last
        `count` copies of `shape`, counting what later shapes would fill into their spare
        room (so one node for several small remainders beats one node each)."""
        nodes = -(-count // per_node)
        spare = _sub(tuple(x * nodes for x in self.type_vec[name]), shape, count)
        held = count * self._amount(shape)
        for later, later_count in self.later:
            took = min(later_count, _copies(spare, later))
            spare = _sub(spare, later, took)
            held += took * self._amount(later)
        per_unit = self.capacity[name] * nodes / held if held else float("inf")
        return (round(per_unit, 9), nodes, name, allowed)

    def _amount(self, shape: Vec) -> float:
        return sum(x / s for x, s in zip(shape, self.scale, strict=True) if s > 0)

    # -- placing ------------------------------------------------------------------------

    def _place(self, bins: list[_Group], groups: list[_Group], shape: Vec, count: int) -> int:
        """First-fit up to `count` copies of `shape` into `groups` (members of `bins`), node
        by node; returns how many were placed. Nodes that take a copy become needed."""
        placed = 0
        for group in groups:
            if placed == count:
                break
            per_node = _copies(group.free, shape)
            if per_node == 0 or not group.ids:
                continue
            want = count - placed
            full = min(len(group.ids), want // per_node)
            splits = [(full, per_node)] if full else []
            rest = want - full * per_node
            if rest and full < len(group.ids):
                splits.append((1, rest))
            for nodes, copies in splits:
                ids = group.ids[:nodes]
                del group.ids[:nodes]
                self.needed.update(ids)
                free = _sub(group.free, shape, copies)
                bins.append(_Group(group.node_type, group.pending, group.total, free, ids))
                placed += nodes * copies
        bins[:] = _compact(bins)
        return placed

    def _first_fit_order(self, bins: list[_Group]) -> list[_Group]:
        return sorted(bins, key=lambda g: g.pending)  # running nodes first, stable otherwise

    def _why_never(self, bundle: Resources) -> str:
        shape = self.vec(bundle)
        missing = [
            n
            for i, n in enumerate(self.names)
            if shape[i] > _EPS and not any(v[i] >= shape[i] - _EPS for v in self.type_vec.values())
        ]
        if missing:
            return f"no node type has enough {', '.join(missing)}"
        return "no single node type has all of these resources"

    def _why_full(self) -> str:
        return (
            "no room: the node types that fit are at their max_workers "
            f"(cluster max_workers {self.req.max_workers})"
        )

    def _place_or_launch(
        self, bins: list[_Group], demand: Demand, reason: str, *, capped: bool
    ) -> None:
        shape = self.vec(demand.bundle)
        left = demand.count - self._place(bins, self._first_fit_order(bins), shape, demand.count)
        if not left:
            return
        if not self._candidate_types(shape):
            self.infeasible.append(
                Infeasible(dict(demand.bundle), left, self._why_never(demand.bundle))
            )
            return
        left, throttled = self._launch_for(bins, shape, left, reason, capped=capped)
        if left and not throttled:
            self.infeasible.append(Infeasible(dict(demand.bundle), left, self._why_full()))

    def _hardest_first(self, demands: Sequence[Demand]) -> list[Demand]:
        """Shapes fewer node types can hold first (GPU work launches GPU nodes, whose spare
        CPUs then serve CPU work), then larger shapes first (first-fit decreasing)."""

        def key(d: Demand) -> tuple:
            candidates = len(self._fitting_types(self.vec(d.bundle))) or len(self.types) + 1
            return (candidates, -len(d.bundle), -sum(d.bundle.values()), sorted(d.bundle.items()))

        return sorted(demands, key=key)

    def _place_constraints(self) -> None:
        """request_resources asks for total capacity, whatever is in use: pack into copies
        of every node's total resources, so real free capacity stays for real demand."""
        bins = [_Group(g.node_type, g.pending, g.total, g.total, list(g.ids)) for g in self.groups]
        for demand in self._hardest_first(self.req.constraints):
            reason = f"request_resources {demand.count} x {format_bundle(demand.bundle)}"
            self._place_or_launch(bins, demand, reason, capped=False)

    def _place_demands(self) -> None:
        ordered = self._hardest_first(self.req.demands)
        shapes = [(self.vec(d.bundle), d.count) for d in ordered]
        for i, demand in enumerate(ordered):
            # Enough lookahead to pair up remainders, bounded to keep decisions fast.
            self.later = shapes[i + 1 : i + 1 + _LOOKAHEAD]
            reason = f"{demand.count} pending {format_bundle(demand.bundle)}"
            self._place_or_launch(self.groups, demand, reason, capped=True)
        self.later = []

    # -- placement groups ---------------------------------------------------------------

    def _place_placement_group(self, pg: PlacementGroupDemand) -> None:
        saved = self._snapshot()
        what = f"placement group {pg.strategy.value} of {len(pg.bundles)} bundles"
        failure = self._try_placement_group(pg, what)
        if failure is None:
            return
        self._restore(saved)
        if failure == _THROTTLED:  # placeable, but upscaling_speed defers its nodes
            return
        for bundle, count in Counter(tuple(sorted(b.items())) for b in pg.bundles).items():
            self.infeasible.append(Infeasible(dict(bundle), count, f"{what}: {failure}"))

    def _try_placement_group(self, pg: PlacementGroupDemand, what: str) -> str | None:
        """Place the whole group; returns why it cannot be placed, or None."""
        for bundle in pg.bundles:
            if not self._candidate_types(self.vec(bundle)):
                return self._why_never(bundle)
        if pg.strategy is PlacementStrategy.STRICT_PACK:
            combined = self.vec({})
            for bundle in pg.bundles:
                combined = _add(combined, self.vec(bundle))
            if not self._candidate_types(combined):
                return "no node type holds all bundles together"
            return self._place_one(combined, set(), what)
        if pg.strategy is PlacementStrategy.STRICT_SPREAD:
            used: set[str] = set()
            for bundle in sorted(pg.bundles, key=lambda b: -sum(b.values())):
                if failure := self._place_one(self.vec(bundle), used, what):
                    return failure
            return None
        # PACK and SPREAD are best effort in Ray: any placement of all bundles will do.
        for bundle, count in Counter(tuple(sorted(b.items())) for b in pg.bundles).items():
            shape = self.vec(dict(bundle))
            left = count - self._place(
                self.groups, self._first_fit_order(self.groups), shape, count
            )
            if left:
                unplaced, throttled = self._launch_for(self.groups, shape, left, what, capped=True)
                if unplaced:
                    return _THROTTLED if throttled else self._why_full()
        return None

    def _place_one(self, shape: Vec, exclude: set[str], reason: str) -> str | None:
        """Put one copy of `shape` on a node not in `exclude` (new if need be); add it there."""
        for group in self._first_fit_order(self.groups):
            if _copies(group.free, shape) == 0:
                continue
            node = next((i for i in group.ids if i not in exclude), None)
            if node is None:
                continue
            group.ids.remove(node)
            free = _sub(group.free, shape, 1)
            self.groups.append(_Group(group.node_type, group.pending, group.total, free, [node]))
            self.groups = _compact(self.groups)
            self.needed.add(node)
            exclude.add(node)
            return None
        before = self.planned
        unplaced, throttled = self._launch_for(self.groups, shape, 1, reason, capped=True)
        if unplaced:
            return _THROTTLED if throttled else self._why_full()
        exclude.add(f"planned-{before}")
        return None

    def _snapshot(self) -> tuple:
        groups = [_Group(g.node_type, g.pending, g.total, g.free, list(g.ids)) for g in self.groups]
        return (groups, Counter(self.counts), list(self.launches), set(self.needed), self.planned)

    def _restore(self, saved: tuple) -> None:
        self.groups, self.counts, self.launches, self.needed, self.planned = saved

    # -- 6. upscaling speed -------------------------------------------------------------

    # -- 7. idle termination ------------------------------------------------------------

    def _terminate_idle(self, live: list[NodeView]) -> None:
        remaining: Counter[str] = Counter(n.node_type for n in live if not n.is_head)
        idle = [n for n in live if not n.is_head and n.id not in self.needed and self._is_idle(n)]
        for node in sorted(idle, key=lambda n: (-n.idle_s, n.id)):
            spec = self.types[node.node_type]
            timeout = (
                spec.idle_timeout_s if spec.idle_timeout_s is not None else self.req.idle_timeout_s
            )
            if node.idle_s >= timeout and remaining[node.node_type] > spec.min_workers:
                remaining[node.node_type] -= 1
                self.terminate.append(
                    Termination(node.id, TerminationCause.IDLE, f"idle {node.idle_s:.0f} s")
                )


def _largest_first(demands: Sequence[Demand]) -> list[Demand]:
    return sorted(
        demands, key=lambda d: (-len(d.bundle), -sum(d.bundle.values()), sorted(d.bundle.items()))
    )


def _strictest_first(pg: PlacementGroupDemand) -> tuple[int, int]:
    """Strict groups have the fewest ways to fit, so they choose nodes before the others."""
    order = [
        PlacementStrategy.STRICT_SPREAD,
        PlacementStrategy.STRICT_PACK,
        PlacementStrategy.SPREAD,
        PlacementStrategy.PACK,
    ]
    return (order.index(pg.strategy), -len(pg.bundles))


def _compact(groups: list[_Group]) -> list[_Group]:
    """Merge groups with the same type, state and resources; drop empty ones (order kept)."""
    index: dict[tuple[str, bool, Vec, Vec], _Group] = {}
    for g in groups:
        if not g.ids:
            continue
        key = (g.node_type, g.pending, g.total, g.free)
        if key in index:
            index[key].ids.extend(g.ids)
        else:
            index[key] = _Group(g.node_type, g.pending, g.total, g.free, list(g.ids))
    return list(index.values())
