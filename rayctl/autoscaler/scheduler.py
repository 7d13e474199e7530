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
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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
Need = tuple[tuple[int, float], ...]  # (resource index, amount) of a shape's nonzero resources
_MANY = 1 << 40  # copies of an empty shape that "fit" anywhere
_INITIAL_PENDING = 5  # Ray's AUTOSCALER_UPSCALING_INITIAL_NUM_NODES
_CHEAP = ("memory", "object_store_memory")  # may grow when nodes merge
_NEAR = 1.1  # capacity per unit held within this factor of the best counts as "as good"


def format_bundle(bundle: Resources) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(bundle.items())) + "}"


def _sub(free: Vec, shape: Vec, copies: int) -> Vec:
    return tuple(f - s * copies for f, s in zip(free, shape, strict=True))


def _add(a: Vec, b: Vec) -> Vec:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _need(shape: Vec) -> Need:
    return tuple((i, s) for i, s in enumerate(shape) if s > _EPS)


def _fit(free: Vec, need: Need) -> int:
    """How many copies of the shape whose nonzero resources are `need` fit into `free`."""
    fit = _MANY
    for i, s in need:
        copies = int((free[i] + _EPS) // s)
        if copies < fit:
            if copies < 1:  # none, or less than none: free can be negative (used > total)
                return 0
            fit = copies
    return fit


class _For(enum.Enum):
    """What nodes are launched for, which decides what may change them after placing."""

    DEMAND = "tasks and actors"  # capped by upscaling_speed; may merge onto larger nodes
    LOOSE_GROUP = "PACK or SPREAD placement group"  # not capped; may merge
    FIXED = "min_workers, constraints, strict placement groups"  # neither


@dataclass(slots=True)
class _Group:
    """Nodes of one type with the same total and free resources, pending or not. Never
    changed once made (a snapshot of the group list is then a shallow copy)."""

    node_type: str
    total: Vec
    free: Vec
    ids: list[str]


@dataclass(slots=True)
class _Want:
    """Copies of one shape still to place; `count` goes down as they are placed."""

    bundle: Resources
    shape: Vec
    need: Need
    amount: float  # one copy's size in capacity units, to weigh what a node holds
    count: int
    reason: str  # the reason given for nodes launched for it


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
        self.priced = bool(self.types) and all(t.cost is not None for t in self.types.values())
        self.capacity = self._capacity_measure()
        self.fitting: dict[Vec, list[str]] = {}  # shape -> the types that can hold it
        self.terminate: list[Termination] = []
        self.infeasible: list[Infeasible] = []
        # Free capacity, running nodes first, then pending and planned ones (first-fit order).
        self.groups: list[_Group] = []
        self.counts: Counter[str] = Counter()  # workers per type, planned ones included
        self.launched: list[tuple[Launch, _For]] = []  # in order; planned ids follow it
        self.needed: set[str] = set()  # node ids that demand or constraints use
        self.planned = 0  # ids handed out to planned nodes

    def vec(self, resources: Resources) -> Vec:
        return tuple(float(resources.get(n, 0.0)) for n in self.names)

    def _capacity_measure(self) -> dict[str, float]:
        """What launching one node of a type costs: its `cost` when every type has one,
        else its resources, each normalised by the largest amount any type has."""
        if self.priced:
            return {name: float(t.cost or 0.0) for name, t in self.types.items()}
        return {name: self._amount(v) for name, v in self.type_vec.items()}

    def _amount(self, shape: Vec) -> float:
        return sum(x / s for x, s in zip(shape, self.scale, strict=True) if s > 0)

    def _want(self, bundle: Resources, count: int, reason: str) -> _Want:
        shape = self.vec(bundle)
        return _Want(bundle, shape, _need(shape), self._amount(shape), count, reason)

    def run(self) -> ScheduleReply:
        live = self._enforce_limits()
        self._build_groups(live)
        room = self._upscaling_room(live)
        self._launch_min_workers()
        self._place_constraints()
        for pg in sorted(self.req.placement_groups, key=_strictest_first):
            self._place_placement_group(pg)
        self._place_demands()
        self._consolidate()
        self._cap_demand_launches(room)
        self._terminate_idle(live)
        launches = [launch for launch, _ in self.launched if launch.count]
        return ScheduleReply(launches, self.terminate, self.infeasible)

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
                index[key] = _Group(node.node_type, total, free, [])
                self.groups.append(index[key])
            index[key].ids.append(node.id)

    # -- launching ----------------------------------------------------------------------

    def _upscaling_room(self, live: list[NodeView]) -> dict[str, int]:
        """Ray's cap: at most max(5, int(speed x max(running, 1))) nodes of a type pending at
        once; returns how many more may go pending, per type."""
        running: Counter[str] = Counter()
        pending: Counter[str] = Counter()
        for node in live:
            if not node.is_head:
                (pending if node.pending else running)[node.node_type] += 1
        speed = self.req.upscaling_speed
        return {
            name: max(_INITIAL_PENDING, int(speed * max(running[name], 1))) - pending[name]
            for name in self.types
        }

    def _cap_demand_launches(self, room: dict[str, int]) -> None:
        """Cut launches for tasks and actors to the upscaling_speed room, the last first.
        Launches for min_workers, constraints and placement groups are never cut, and the
        room is at least what they take (Ray's rule): demand gets what they leave of it."""
        exempt: Counter[str] = Counter()
        capped: Counter[str] = Counter()
        for launch, why in self.launched:
            (capped if why is _For.DEMAND else exempt)[launch.node_type] += launch.count
        cut = Counter(
            {
                name: count - (max(room[name], exempt[name]) - exempt[name])
                for name, count in capped.items()
            }
        )
        for index in reversed(range(len(self.launched))):
            launch, why = self.launched[index]
            drop = min(max(cut[launch.node_type], 0), launch.count) if why is _For.DEMAND else 0
            cut[launch.node_type] -= drop
            self.launched[index] = (replace(launch, count=launch.count - drop), why)

    def _slots(self, name: str) -> int:
        """How many more workers of `name` the per-type and the global max allow."""
        per_type = self.types[name].max_workers - self.counts[name]
        return max(0, min(per_type, self.req.max_workers - sum(self.counts.values())))

    def _new_nodes(self, name: str, count: int, reason: str, why: _For) -> list[str]:
        ids = [f"planned-{self.planned + i}" for i in range(count)]
        self.planned += count
        self.counts[name] += count
        self.launched.append((Launch(name, count, reason), why))
        return ids

    def _consolidate(self) -> None:
        """Fewer, larger nodes, as Ray's utilisation scorer prefers: move what several nodes
        launched for tasks, actors or PACK/SPREAD groups hold onto one node of a type that
        has no more of any resource but memory than they have together (and, when types
        have a `cost`, costs no more than they do together). The last step that
        uses the groups. Largest types first: a merged node is never a source again, since
        only smaller types merge into a type."""
        launch_of: dict[str, int] = {}  # planned node that may move -> its launch
        first = 0
        for index, (launch, why) in enumerate(self.launched):
            if why is not _For.FIXED:
                launch_of.update((f"planned-{first + i}", index) for i in range(launch.count))
            first += launch.count
        pool = [g for g in self.groups if g.ids[0] in launch_of]
        for target in sorted(self.types, key=lambda n: (-self.capacity[n], n)):
            while self._merge_into(target, pool, launch_of):
                pass

    def _merge_into(self, target: str, pool: list[_Group], launch_of: dict[str, int]) -> bool:
        """Merge nodes of `pool` onto nodes of `target`, as many identical batches as the
        pool has; False if not even two nodes merge. The fullest nodes go first, GPU work
        first onto a GPU type (its spare CPUs then take CPU work)."""
        room = self.type_vec[target]
        gpu = self._gpu_index()
        has_gpu = gpu is not None and room[gpu] > _EPS
        sources = [
            (g, _sub(g.total, g.free, 1))
            for g in pool
            if self.capacity[g.node_type] < self.capacity[target]
        ]
        sources.sort(
            key=lambda s: (
                gpu is not None and (s[1][gpu] > _EPS) != has_gpu,
                -self._amount(s[1]),
                s[0].ids[0],
            )
        )
        take: list[tuple[_Group, int]] = []  # (group, nodes of it per target node)
        had = self.vec({})
        price = 0.0
        for g, used in sources:
            copies = min(len(g.ids), _fit(room, _need(used)))
            if copies:
                take.append((g, copies))
                room = _sub(room, used, copies)
                had = _sub(had, g.total, -copies)
                price += copies * self.capacity[g.node_type]
        grows = any(
            t > h + _EPS
            for name, t, h in zip(self.names, self.type_vec[target], had, strict=True)
            if name not in _CHEAP
        ) or (self.priced and self.capacity[target] > price + _EPS)
        times = min(
            [self.types[target].max_workers - self.counts[target]]
            + [len(g.ids) // copies for g, copies in take]
        )
        if grows or sum(copies for _, copies in take) < 2 or times < 1:
            return False
        reason = self.launched[launch_of[take[0][0].ids[0]]][0].reason  # the fullest node's
        kinds: set[_For] = set()
        for g, copies in take:
            for node in g.ids[: times * copies]:
                launch, why = self.launched[launch_of[node]]
                self.launched[launch_of[node]] = (replace(launch, count=launch.count - 1), why)
                kinds.add(why)
            self.counts[g.node_type] -= times * copies
            pool.remove(g)
            if times * copies < len(g.ids):
                pool.append(replace(g, ids=g.ids[times * copies :]))
        self._new_nodes(
            target, times, reason, _For.DEMAND if kinds == {_For.DEMAND} else _For.LOOSE_GROUP
        )
        return True

    def _launch_min_workers(self) -> None:
        for name, spec in sorted(self.types.items()):
            short = min(spec.min_workers - self.counts[name], self._slots(name))
            if short > 0:
                ids = self._new_nodes(name, short, f"min_workers {spec.min_workers}", _For.FIXED)
                vec = self.type_vec[name]
                self.groups.append(_Group(name, vec, vec, ids))

    def _fitting_types(self, shape: Vec) -> list[str]:
        if shape not in self.fitting:
            need = _need(shape)
            self.fitting[shape] = sorted(n for n, v in self.type_vec.items() if _fit(v, need))
        return self.fitting[shape]

    def _gpu_index(self) -> int | None:
        return self.names.index("GPU") if "GPU" in self.names else None

    def _candidate_types(self, shape: Vec, names: list[str]) -> list[str]:
        """Of `names`, the ones to launch for `shape`: GPU types only if no other will do."""
        gpu = self._gpu_index()
        if gpu is not None and shape[gpu] <= _EPS:
            return [name for name in names if self.type_vec[name][gpu] <= _EPS] or names
        return names

    def _open_nodes(self, bins: list[_Group], wants: list[_Want], why: _For) -> None:
        """Launch nodes for the copies in `wants` (hardest shape first) and place them there;
        copies still in `wants` afterwards found no room under max_workers.

        Each node is opened for the first shape still wanted and filled first-fit with it and
        the shapes after it. Of the types whose node uses its capacity within 10% as well as
        the best one does (capacity per unit of demand held), the one holding the most wins:
        fewer, larger nodes, as Ray's utilisation scorer prefers, without its half-empty big
        nodes. Equal holdings go to the type that fits the first shape alone best (a
        memory-heavy shape to a high-memory type, leaving the CPU work to fill both). As many
        identical nodes as the counts allow are launched in one step."""
        active = [w for w in wants if w.count]
        while active:
            head = active[0]
            launchable = [n for n in self._fitting_types(head.shape) if self._slots(n)]
            options = []  # (capacity per unit held, -held, capacity per head copy, name, ...)
            for name in self._candidate_types(head.shape, launchable):
                free = total = self.type_vec[name]
                takes: list[int] = []
                held = 0.0
                for want in active:
                    took = min(want.count, _fit(free, want.need))
                    takes.append(took)
                    if took:
                        free = _sub(free, want.shape, took)
                        held += took * want.amount
                alone = self.capacity[name] / (_fit(total, head.need) * head.amount)
                per_unit = self.capacity[name] / held
                options.append((per_unit, -round(held, 9), round(alone, 9), name, takes, free))
            if not options:  # no type with room holds it
                active.pop(0)
                continue
            near = min(o[0] for o in options) * _NEAR
            _, _, _, name, takes, free = min((o for o in options if o[0] <= near), key=_holding)
            nodes = min(
                self._slots(name), *(w.count // t for w, t in zip(active, takes, strict=True) if t)
            )
            for want, took in zip(active, takes, strict=True):
                want.count -= nodes * took
            ids = self._new_nodes(name, nodes, head.reason, why)
            total = self.type_vec[name]
            bins.append(_Group(name, total, free, ids))
            if bins is not self.groups:  # placing into a copy (constraints): real capacity too
                self.groups.append(_Group(name, total, total, list(ids)))
            active = [w for w in active if w.count]

    # -- placing ------------------------------------------------------------------------

    def _place(self, bins: list[_Group], want: _Want) -> None:
        """First-fit the wanted copies into `bins`, node by node, in order; a node that
        takes a copy becomes needed and keeps its place in the order."""
        if not want.need:  # no resources: fits anywhere, needs no node
            want.count = 0  # (the loop below then leaves `bins` as they are)
        out: list[_Group] = []
        for i, g in enumerate(bins):
            if not want.count:
                out.extend(bins[i:])
                break
            per_node = _fit(g.free, want.need)
            if not per_node:
                out.append(g)
                continue
            full = min(len(g.ids), want.count // per_node)
            rest = want.count - full * per_node
            part = 1 if rest else 0  # a node for the rest (none if g.ids[full:] is empty)
            for ids, copies in ((g.ids[:full], per_node), (g.ids[full : full + part], rest)):
                if ids:
                    self.needed.update(ids)
                    free = _sub(g.free, want.shape, copies)
                    out.append(_Group(g.node_type, g.total, free, ids))
                    want.count -= len(ids) * copies
            if full + part < len(g.ids):
                out.append(_Group(g.node_type, g.total, g.free, g.ids[full + part :]))
        bins[:] = out

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

    def _place_all(self, bins: list[_Group], wants: list[_Want], why: _For) -> None:
        """Free capacity in `bins` first, then new nodes; report what has no place."""
        launch = []
        for want in wants:
            self._place(bins, want)
            if not want.count:
                continue
            if self._fitting_types(want.shape):
                launch.append(want)
            else:
                self.infeasible.append(
                    Infeasible(dict(want.bundle), want.count, self._why_never(want.bundle))
                )
        self._open_nodes(bins, launch, why)
        for want in launch:
            if want.count:
                self.infeasible.append(Infeasible(dict(want.bundle), want.count, self._why_full()))

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
        bins = [_Group(g.node_type, g.total, g.total, g.ids) for g in self.groups]
        wants = [
            self._want(
                d.bundle, d.count, f"request_resources {d.count} x {format_bundle(d.bundle)}"
            )
            for d in self._hardest_first(self.req.constraints)
        ]
        self._place_all(bins, wants, _For.FIXED)

    def _demand_wants(self) -> list[_Want]:
        return [
            self._want(d.bundle, d.count, f"{d.count} pending {format_bundle(d.bundle)}")
            for d in self._hardest_first(self.req.demands)
        ]

    def _place_demands(self) -> None:
        self._place_all(self.groups, self._demand_wants(), _For.DEMAND)

    # -- placement groups ---------------------------------------------------------------

    def _place_placement_group(self, pg: PlacementGroupDemand) -> None:
        saved = (list(self.groups), Counter(self.counts), list(self.launched))
        saved_ids = (set(self.needed), self.planned)
        what = f"placement group {pg.strategy.value} of {len(pg.bundles)} bundles"
        failure = self._try_placement_group(pg, what)
        if failure is None:
            return
        self.groups, self.counts, self.launched = saved
        self.needed, self.planned = saved_ids
        for bundle, count in Counter(tuple(sorted(b.items())) for b in pg.bundles).items():
            self.infeasible.append(Infeasible(dict(bundle), count, f"{what}: {failure}"))

    def _try_placement_group(self, pg: PlacementGroupDemand, what: str) -> str | None:
        """Place the whole group; returns why it cannot be placed, or None."""
        for bundle in pg.bundles:
            if not self._fitting_types(self.vec(bundle)):
                return self._why_never(bundle)
        if pg.strategy is PlacementStrategy.STRICT_PACK:
            combined = self.vec({})
            for bundle in pg.bundles:
                combined = _add(combined, self.vec(bundle))
            if not self._fitting_types(combined):
                return "no node type holds all bundles together"
            return None if self._place_one(combined, set(), what) else self._why_full()
        if pg.strategy is PlacementStrategy.STRICT_SPREAD:
            used: set[str] = set()
            for bundle in sorted(pg.bundles, key=lambda b: -sum(b.values())):
                if not self._place_one(self.vec(bundle), used, what):
                    return self._why_full()
            return None
        # PACK and SPREAD are best effort in Ray: any placement of all bundles will do.
        wants = [
            self._want(dict(bundle), count, what)
            for bundle, count in Counter(tuple(sorted(b.items())) for b in pg.bundles).items()
        ]
        for want in wants:
            self._place(self.groups, want)
        self._open_nodes(self.groups, wants, _For.LOOSE_GROUP)
        return self._why_full() if any(w.count for w in wants) else None

    def _place_one(self, shape: Vec, exclude: set[str], reason: str) -> bool:
        """Put one copy of `shape` on a node not in `exclude` (new if need be) and add the
        node to `exclude`; False if no node can take it."""
        need = _need(shape)
        if not need:  # no resources: fits anywhere, needs no node
            return True
        for i, g in enumerate(self.groups):
            node = (
                next((n for n in g.ids if n not in exclude), None) if _fit(g.free, need) else None
            )
            if node is None:
                continue
            rest = [n for n in g.ids if n != node]
            taken = _Group(g.node_type, g.total, _sub(g.free, shape, 1), [node])
            self.groups[i : i + 1] = [taken] + ([replace(g, ids=rest)] if rest else [])
            self.needed.add(node)
            exclude.add(node)
            return True
        want = _Want({}, shape, need, self._amount(shape), 1, reason)
        self._open_nodes(self.groups, [want], _For.FIXED)
        if want.count:
            return False
        exclude.add(self.groups[-1].ids[0])
        return True

    # -- idle termination ---------------------------------------------------------------

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
                    Termination(
                        node.id,
                        TerminationCause.IDLE,  # shown as "idle: 400 s, past its 300 s timeout"
                        f"{node.idle_s:.0f} s, past its {timeout:g} s timeout",
                    )
                )


def _holding(option: tuple) -> tuple:
    """Most held first, then the least capacity per copy of the first shape, then by name."""
    return option[1:4]


def _strictest_first(pg: PlacementGroupDemand) -> tuple[int, int]:
    """Strict groups have the fewest ways to fit, so they choose nodes before the others."""
    order = [
        PlacementStrategy.STRICT_SPREAD,
        PlacementStrategy.STRICT_PACK,
        PlacementStrategy.SPREAD,
        PlacementStrategy.PACK,
    ]
    return (order.index(pg.strategy), -len(pg.bundles))
