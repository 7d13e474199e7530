"""The autoscaler's scheduler (rayctl/autoscaler/scheduler.py) against the spec's rules.

Every expected answer is worked out by hand from the rules (the arithmetic is in a comment
next to it).
"""

from __future__ import annotations

import copy

import pytest

from rayctl.autoscaler.scheduler import (
    Demand,
    NodeTypeSpec,
    NodeView,
    PlacementGroupDemand,
    PlacementStrategy,
    ScheduleReply,
    ScheduleRequest,
    TerminationCause,
    schedule,
)

IDLE = TerminationCause.IDLE
MAX = TerminationCause.MAX_WORKERS
REMOVED = TerminationCause.TYPE_REMOVED
PACK = PlacementStrategy.PACK
SPREAD = PlacementStrategy.SPREAD
STRICT_PACK = PlacementStrategy.STRICT_PACK
STRICT_SPREAD = PlacementStrategy.STRICT_SPREAD


# -- builders ----------------------------------------------------------------------------


def spec(
    name: str,
    resources: dict[str, float],
    *,
    min_workers: int = 0,
    max_workers: int = 100,
    cost: float | None = None,
    idle_timeout_s: float | None = None,
) -> NodeTypeSpec:
    return NodeTypeSpec(name, resources, min_workers, max_workers, cost, idle_timeout_s)


def types(*specs: NodeTypeSpec) -> dict[str, NodeTypeSpec]:
    return {s.name: s for s in specs}


def node(
    id: str,
    node_type: str,
    *,
    free: dict[str, float] | None = None,
    idle_s: float = 0.0,
    pending: bool = False,
    head: bool = False,
    total: dict[str, float] | None = None,
) -> NodeView:
    """A node; `free=None` means all of its total resources are free, `total=None` that it
    has its type's resources."""
    return NodeView(
        id, node_type, is_head=head, pending=pending, available=free, total=total, idle_s=idle_s
    )


def busy(id: str, node_type: str, **kw) -> NodeView:
    """A running node with nothing free (every resource in use)."""
    return node(id, node_type, free={}, **kw)


def pg(strategy: PlacementStrategy, *bundles: dict[str, float]) -> PlacementGroupDemand:
    return PlacementGroupDemand(strategy, tuple(bundles))


def request(node_types, nodes=(), *, max_workers: int = 100, **kw) -> ScheduleRequest:
    return ScheduleRequest(node_types, max_workers, list(nodes), **kw)


def decide(node_types, nodes=(), *, max_workers: int = 100, **kw) -> ScheduleReply:
    return schedule(request(node_types, nodes, max_workers=max_workers, **kw))


def terminated(reply: ScheduleReply) -> list[tuple[str, TerminationCause]]:
    return [(t.id, t.cause) for t in reply.terminate]


def infeasible(reply: ScheduleReply) -> list[tuple[dict, int, str]]:
    return [(dict(i.bundle), i.count, i.reason) for i in reply.infeasible]


def no_room(cluster_max: int = 100) -> str:
    return (
        "no room: the node types that fit are at their max_workers "
        f"(cluster max_workers {cluster_max})"
    )


CPU4 = spec("cpu", {"CPU": 4})
HEAD = spec("head", {"CPU": 2}, max_workers=0)


# -- 1. limits: max_workers, removed types, the head -------------------------------------


def test_lowered_type_max_terminates_idle_nodes_longest_idle_first():
    t = types(spec("cpu", {"CPU": 4}, max_workers=2))
    nodes = [busy("a", "cpu"), node("b", "cpu", idle_s=10), node("c", "cpu", idle_s=200)]
    nodes.append(node("d", "cpu", idle_s=20))
    reply = decide(t, nodes)
    # 4 workers - max 2 = 2 to drop; idle ones longest first: c (200), d (20); busy a kept
    assert terminated(reply) == [("c", MAX), ("d", MAX)]
    assert reply.terminate[0].detail == "cpu has 4 workers, max_workers 2"
    assert reply.launch == {}
    assert reply.infeasible == []


def test_lowered_global_max_terminates_idle_workers_across_types_not_the_head():
    t = types(HEAD, CPU4, spec("gpu", {"CPU": 4, "GPU": 1}))
    nodes = [
        node("h", "head", head=True, idle_s=10_000),
        busy("c1", "cpu"),
        node("c2", "cpu", idle_s=100),
        node("g1", "gpu", idle_s=250),
    ]
    reply = decide(t, nodes, max_workers=1)
    # 3 workers (head not counted) - global max 1 = 2 dropped: idle g1 (250), c2 (100)
    assert terminated(reply) == [("c2", MAX), ("g1", MAX)]
    assert reply.launch == {}


def test_lowered_global_max_terminates_several_idle_nodes_of_one_type():
    t = types(CPU4)
    nodes = [busy("b", "cpu"), node("i1", "cpu", idle_s=5), node("i2", "cpu", idle_s=50)]
    nodes.append(node("i3", "cpu", idle_s=500))
    reply = decide(t, nodes, max_workers=1)
    # 4 workers - global max 1 = 3 dropped: the idle ones i3, i2, i1; busy b stays
    assert terminated(reply) == [("i1", MAX), ("i2", MAX), ("i3", MAX)]
    assert reply.terminate[0].detail == "cluster has 4 workers, max_workers 1"
    assert reply.launch == {}


def test_global_max_counts_workers_only():
    t = types(HEAD, CPU4)
    nodes = [node("h", "head", head=True), busy("c1", "cpu"), busy("c2", "cpu")]
    reply = decide(t, nodes, max_workers=2, demands=[Demand({"CPU": 4}, 1)])
    # head + 2 workers = 2 workers <= 2: nothing dropped; no slot left for the 1 new node
    assert reply.terminate == []
    assert reply.launch == {}
    assert infeasible(reply) == [({"CPU": 4}, 1, no_room(2))]


def test_removed_type_workers_terminated_head_kept():
    t = types(CPU4)
    nodes = [
        node("h", "old-head", head=True, idle_s=10_000),
        busy("o1", "old-gpu"),
        node("o2", "old-gpu", idle_s=5),
        busy("c1", "cpu"),
    ]
    reply = decide(t, nodes)
    # o1, o2 have a type no longer in the config (busy or not); the head never goes
    assert terminated(reply) == [("o1", REMOVED), ("o2", REMOVED)]
    assert reply.terminate[0].detail == "node type old-gpu removed"
    assert reply.launch == {}


def test_head_is_never_terminated():
    # head's type removed, idle for ages, cluster max_workers 0
    nodes = [node("h", "gone", head=True, idle_s=1e9), node("w", "cpu", idle_s=1e9)]
    reply = decide(types(CPU4), nodes, max_workers=0, idle_timeout_s=1)
    # w: 1 worker > global max 0 -> max_workers; head untouched
    assert terminated(reply) == [("w", MAX)]


def test_dropped_nodes_capacity_is_not_used_and_the_max_is_not_exceeded():
    t = types(spec("cpu", {"CPU": 4}, max_workers=1))
    nodes = [node("c1", "cpu"), busy("c2", "cpu")]
    reply = decide(t, nodes, demands=[Demand({"CPU": 4}, 1)])
    # 2 > max 1: idle c1 dropped; busy c2 has no room and no slot is left for a new node
    assert terminated(reply) == [("c1", MAX)]
    assert reply.launch == {}
    assert infeasible(reply) == [({"CPU": 4}, 1, no_room())]


def test_lowered_global_max_keeps_min_workers_when_it_can():
    t = types(spec("a", {"CPU": 4}, min_workers=1), spec("b", {"CPU": 4}))
    nodes = [node("a1", "a", idle_s=100), node("b1", "b", idle_s=50)]
    reply = decide(t, nodes, max_workers=1)
    # 2 workers > 1: drop one; a has min_workers 1, b has 0 -> drop b1, a1 stays
    assert terminated(reply) == [("b1", MAX)]
    assert reply.launch == {}


def test_lowered_type_max_terminates_pending_before_busy():
    t = types(spec("cpu", {"CPU": 4}, max_workers=1))
    nodes = [busy("a", "cpu"), node("b", "cpu", pending=True)]
    reply = decide(t, nodes)
    # 2 > max 1: the pending node has nothing in use, the busy one runs work -> drop b
    assert terminated(reply) == [("b", MAX)]


# -- 2. min_workers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "cluster_max", "expected"),
    [
        ([], 100, {"cpu": 3}),  # 3 - 0
        ([busy("r", "cpu"), node("p", "cpu", pending=True)], 100, {"cpu": 1}),  # 3 - 2
        ([busy("r1", "cpu"), busy("r2", "cpu"), busy("r3", "cpu")], 100, {}),  # 3 - 3
        ([], 2, {"cpu": 2}),  # min(3, global max 2)
    ],
    ids=["from-zero", "pending-count", "met", "global-max"],
)
def test_min_workers_launched(nodes, cluster_max, expected):
    t = types(spec("cpu", {"CPU": 4}, min_workers=3))
    reply = decide(t, nodes, max_workers=cluster_max)
    assert reply.launch == expected
    assert reply.terminate == []


def test_idle_nodes_not_terminated_below_min_workers():
    t = types(spec("cpu", {"CPU": 4}, min_workers=2))
    nodes = [node("a", "cpu", idle_s=1000), node("b", "cpu", idle_s=1000)]
    # 2 workers == min 2: none may go, none to launch
    reply = decide(t, nodes)
    assert reply.terminate == []
    assert reply.launch == {}


# -- 3. tasks and actors: free capacity first --------------------------------------------

GPU8 = spec("gpu", {"CPU": 8, "GPU": 1})


@pytest.mark.parametrize(
    ("node_types", "nodes", "demands", "expected"),
    [
        # running node with 4 free CPUs holds 4 x 1 CPU
        (types(CPU4), [node("w", "cpu")], [Demand({"CPU": 1}, 4)], {}),
        # 1 free CPU holds 1 of 3; 2 left fit on one new 4-CPU node
        (types(CPU4), [node("w", "cpu", free={"CPU": 1})], [Demand({"CPU": 1}, 3)], {"cpu": 1}),
        # a pending node's 4 CPUs hold 4 x 1 CPU
        (types(CPU4), [node("p", "cpu", pending=True)], [Demand({"CPU": 1}, 4)], {}),
        # the head's 2 free CPUs hold 2 x 1 CPU
        (types(HEAD, CPU4), [node("h", "head", head=True)], [Demand({"CPU": 1}, 2)], {}),
        # 2 min_workers planned this decision hold 2 x 4 CPUs: only the 2 min nodes
        (types(spec("cpu", {"CPU": 4}, min_workers=2)), [], [Demand({"CPU": 4}, 2)], {"cpu": 2}),
        # an existing GPU node's 8 free CPUs hold 2 x 4 CPUs (whatever its type)
        (
            types(CPU4, GPU8),
            [node("g", "gpu", free={"CPU": 8})],
            [Demand({"CPU": 4}, 2)],
            {},
        ),
        # 2 free CPUs: 2 of 6 x 1 CPU; 4 left = one new node
        (
            types(CPU4),
            [busy("b", "cpu"), node("w", "cpu", free={"CPU": 2})],
            [Demand({"CPU": 1}, 6)],
            {"cpu": 1},
        ),
    ],
    ids=["running", "partly-free", "pending", "head", "planned", "gpu-node", "mixed"],
)
def test_demand_uses_free_capacity_first(node_types, nodes, demands, expected):
    reply = decide(node_types, nodes, demands=demands)
    assert reply.launch == expected
    assert reply.infeasible == []
    assert reply.terminate == []


def test_identical_nodes_each_hold_their_share():
    nodes = [node(f"w{i}", "cpu", idle_s=1000) for i in range(3)]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 3}, 3), Demand({"CPU": 1}, 3)])
    # 3 identical idle nodes (one group) hold 3 x 3 CPUs, then 3 x 1 CPU in what is left
    assert reply.launch == {}
    assert reply.terminate == []  # all three are used


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        ({"CPU": 4}, {"cpu": 1}),  # {CPU: 3} takes 3 of w's 4; {CPU: 2} no longer fits
        ({"CPU": 5}, {}),  # 3 + 2 = 5: both fit
    ],
)
def test_capacity_taken_by_one_shape_is_gone_for_the_next(free, expected):
    t = types(spec("cpu", {"CPU": 8}))
    nodes = [node("w", "cpu", free=free), busy("b", "cpu")]
    reply = decide(t, nodes, demands=[Demand({"CPU": 3}), Demand({"CPU": 2})])
    assert reply.launch == expected


def test_node_total_given_overrides_its_types():
    # the node reports 8 CPUs (its type says 4), 8 free: it holds 2 x 4 CPUs and is idle
    nodes = [node("w", "cpu", total={"CPU": 8}, idle_s=1000)]
    assert decide(types(CPU4), nodes, demands=[Demand({"CPU": 4}, 2)]).launch == {}
    # with nothing asked of it, all 8 of its 8 CPUs free: idle past the timeout
    assert terminated(decide(types(CPU4), nodes)) == [("w", IDLE)]
    # 4 of 8 free: busy, whatever its type's 4 CPUs say
    half = [node("w", "cpu", total={"CPU": 8}, free={"CPU": 4}, idle_s=1000)]
    assert decide(types(CPU4), half).terminate == []
    # request_resources counts its total 8: 2 x 4 CPUs need no new node
    assert decide(types(CPU4), half, constraints=[Demand({"CPU": 4}, 2)]).launch == {}


def test_shapes_share_nodes_planned_in_the_same_decision():
    # 2 x 3 CPU need 2 nodes (4 CPUs each, 1 left on each); 2 x 1 CPU fit in those leftovers
    reply = decide(types(CPU4), demands=[Demand({"CPU": 1}, 2), Demand({"CPU": 3}, 2)])
    assert reply.launch == {"cpu": 2}


SMALL_BIG = types(spec("small", {"CPU": 2}), spec("big", {"CPU": 8}))


@pytest.mark.parametrize(
    ("demand", "expected"),
    [
        # small: 2 nodes x 2/8 = 0.5; big: 1 node x 1.0 -> small x 2
        (Demand({"CPU": 1}, 3), {"small": 2}),
        # only big holds 3 CPUs: ceil(5 / 2 per node) = 3 nodes
        (Demand({"CPU": 3}, 5), {"big": 3}),
        # tie: small 4 x 0.25 = 1.0, big 1 x 1.0 -> fewest nodes: big x 1
        (Demand({"CPU": 2}, 4), {"big": 1}),
    ],
    ids=["least-capacity", "only-fit", "tie-fewest-nodes"],
)
def test_new_nodes_least_capacity_then_fewest_nodes(demand, expected):
    assert decide(SMALL_BIG, demands=[demand]).launch == expected


def test_ray_example_fewer_larger_nodes():
    # Ray 2.60 v1 and v2 both launch 1 x 16xlarge + 2 x 4xlarge + 2 x large (100 CPUs)
    t = types(
        spec("m4.large", {"CPU": 2}, max_workers=10),
        spec("m4.4xlarge", {"CPU": 16}, max_workers=8),
        spec("m4.16xlarge", {"CPU": 64}, max_workers=4),
    )
    reply = decide(t, upscaling_speed=9999, demands=[Demand({"CPU": 1}, 100)])
    # 64 + 2 x 16 + 2 x 2 = 100: each node full, the largest full one first
    assert reply.launch == {"m4.16xlarge": 1, "m4.4xlarge": 2, "m4.large": 2}
    assert reply.infeasible == []


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        # big holds all 20 for 22/20 = 1.1 x small's capacity per CPU (10/10): within 10%,
        # and it holds more -> one big node
        (20, {"big": 1}),
        # big 22/19 = 1.16 x: too wasteful -> small (10), then 9: small 10/9 beats big 22/9
        (19, {"small": 2}),
    ],
)
def test_larger_type_only_within_ten_percent_of_the_best_use(count, expected):
    t = types(spec("small", {"CPU": 10}), spec("big", {"CPU": 22}))
    assert decide(t, demands=[Demand({"CPU": 1}, count)]).launch == expected


def test_memory_heavy_shape_goes_to_the_type_that_fits_it_best():
    t = types(spec("cpu", {"CPU": 16, "memory": 16}), spec("highmem", {"CPU": 16, "memory": 64}))
    # 8 x {memory: 8}: cpu holds 2 per node (4 nodes), highmem 8 (1 node); each node's CPUs
    # then hold the 16 x {CPU: 1}: highmem (16 CPU, 64 memory) holds everything
    demands = [Demand({"CPU": 1}, 16), Demand({"memory": 8}, 8)]
    assert decide(t, demands=demands).launch == {"highmem": 1}


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        # b has no cost -> measure by resources: a 4/8 = 0.5 < b 8/8 = 1.0
        ((100.0, None), {"a": 1}),
        # every type has a cost -> a 100 > b 1
        ((100.0, 1.0), {"b": 1}),
    ],
    ids=["partial-costs-ignored", "all-costs-used"],
)
def test_cost_used_only_when_every_type_has_one(costs, expected):
    t = types(spec("a", {"CPU": 4}, cost=costs[0]), spec("b", {"CPU": 8}, cost=costs[1]))
    assert decide(t, demands=[Demand({"CPU": 4}, 1)]).launch == expected


def test_least_capacity_may_mix_types():
    t = types(spec("small", {"CPU": 2}, cost=1.2), spec("big", {"CPU": 8}, cost=4.0))
    reply = decide(t, demands=[Demand({"CPU": 1}, 10)])
    # small x5 = 6.0, big x2 = 8.0, big + small = 5.2 (10 CPUs) -> the cheapest
    assert reply.launch == {"big": 1, "small": 1}


def test_equal_cost_tie_broken_by_fewest_nodes_with_decimal_costs():
    t = types(spec("small", {"CPU": 1}, cost=0.3), spec("big", {"CPU": 3}, cost=0.9))
    reply = decide(t, demands=[Demand({"CPU": 1}, 3)])
    # small x3 = 0.9 == big x1 = 0.9 -> fewest nodes: big x1
    assert reply.launch == {"big": 1}


# -- fewer, larger nodes: what planned nodes hold moves onto one larger node -----------------

# small: 4 CPU for 4 memory; big: twice the CPUs, four times the memory. Per copy of
# {CPU: 4, memory: 1} small wastes less (0.75 vs 2.0 per 2 copies), so each copy first gets
# its own small node; two smalls then hold no fewer CPUs than one big: they merge.
SMALL_MEM = spec("small", {"CPU": 4, "memory": 4})
BIG_MEM = spec("big", {"CPU": 8, "memory": 16})
CPU4_MEM1 = {"CPU": 4, "memory": 1}


@pytest.mark.parametrize(
    ("big_cpus", "count", "expected"),
    [
        (8, 2, {"big": 1}),  # 2 small -> 1 big: same CPUs, more memory
        (8, 3, {"big": 1, "small": 1}),  # 3 small: a pair merges, one stays
        (9, 2, {"small": 2}),  # big has a CPU more than two smalls: no merge
    ],
)
def test_nodes_merge_onto_a_larger_type_with_no_more_cpus(big_cpus, count, expected):
    t = types(SMALL_MEM, spec("big", {"CPU": big_cpus, "memory": 16}))
    reply = decide(t, demands=[Demand(CPU4_MEM1, count)])
    assert reply.launch == expected
    assert reply.infeasible == []


@pytest.mark.parametrize(
    ("big_cost", "expected"),
    [(2.0, {"big": 1}), (2.5, {"small": 2})],  # the two smalls cost 2.0
)
def test_with_costs_nodes_merge_only_onto_a_type_costing_no_more(big_cost, expected):
    t = types(
        spec("small", {"CPU": 4, "memory": 4}, cost=1.0),
        spec("big", {"CPU": 8, "memory": 16}, cost=big_cost),
    )
    # {CPU: 3} and {CPU: 2} each cost least on a small of their own (5 CPUs > 4); a big
    # holds both
    demands = [Demand({"CPU": 3, "memory": 1}, 1), Demand({"CPU": 2, "memory": 1}, 1)]
    assert decide(t, demands=demands).launch == expected


def test_merged_node_keeps_the_reason_of_the_fullest_node():
    # {CPU: 3} and {CPU: 2} need a small each (5 CPUs > 4); both merge onto a big
    demands = [Demand({"CPU": 2, "memory": 1}, 1), Demand({"CPU": 3, "memory": 1}, 1)]
    reply = decide(types(SMALL_MEM, BIG_MEM), demands=demands)
    assert [(la.node_type, la.count, la.reason) for la in reply.launches] == [
        ("big", 1, "1 pending {CPU: 3, memory: 1}")
    ]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        # {CPU: 3, memory: 3} + {CPU: 1, memory: 3} need 6 memory; big has 5
        ({"CPU": 1, "memory": 3}, {"small": 2}),
        # {CPU: 3, memory: 3} + {CPU: 1, memory: 2} fit in 5
        ({"CPU": 1, "memory": 2}, {"big": 1}),
    ],
)
def test_nodes_merge_only_when_what_they_hold_fits_together(second, expected):
    t = types(SMALL_MEM, spec("big", {"CPU": 8, "memory": 5}))
    demands = [Demand({"CPU": 3, "memory": 3}, 1), Demand(second, 1)]
    assert decide(t, demands=demands).launch == expected


def test_what_one_merge_leaves_merges_in_the_next():
    # 3 full smalls and one half full: a big takes two full ones, then the third with the
    # half-full one (6 of 8 CPUs)
    demands = [Demand(CPU4_MEM1, 3), Demand({"CPU": 2, "memory": 1}, 1)]
    assert decide(types(SMALL_MEM, BIG_MEM), demands=demands).launch == {"big": 2}


def test_no_merge_beyond_the_larger_types_max_workers():
    t = types(SMALL_MEM, spec("big", {"CPU": 8, "memory": 16}, max_workers=1))
    # 4 smalls: one merge of two fits big's max of 1; the other two stay small
    assert decide(t, demands=[Demand(CPU4_MEM1, 4)]).launch == {"big": 1, "small": 2}


def test_nodes_merged_away_free_their_types_max_workers():
    # Two {CPU: 4} copies get a mid each (max 2), two {CPU: 2} copies a small each. Both mids
    # merge onto a big first; that frees mid's max_workers for the two smalls to merge onto.
    t = types(
        spec("small", {"CPU": 2, "memory": 2}),
        spec("mid", {"CPU": 4, "memory": 8}, max_workers=2),
        spec("big", {"CPU": 8, "memory": 32}),
    )
    demands = [Demand({"CPU": 4, "memory": 1}, 2), Demand({"CPU": 2, "memory": 1}, 2)]
    assert decide(t, demands=demands).launch == {"big": 1, "mid": 1}


def test_running_nodes_count_against_the_larger_types_max_workers():
    t = types(SMALL_MEM, spec("big", {"CPU": 8, "memory": 16}, max_workers=1))
    reply = decide(t, [busy("w", "big")], demands=[Demand(CPU4_MEM1, 2)])
    assert reply.launch == {"small": 2}


def test_strict_spread_bundles_never_merge_onto_one_node():
    group = pg(STRICT_SPREAD, CPU4_MEM1, CPU4_MEM1)
    assert decide(types(SMALL_MEM, BIG_MEM), placement_groups=[group]).launch == {"small": 2}


def test_pack_group_nodes_merge_and_stay_exempt_from_upscaling_speed():
    # 12 copies: 12 smalls -> 6 bigs. Tasks are capped at max(5, 1) = 5 pending nodes; a PACK
    # group is not, merged or not.
    t = types(SMALL_MEM, BIG_MEM)
    tasks = decide(t, demands=[Demand(CPU4_MEM1, 12)])
    group = decide(t, placement_groups=[pg(PACK, *[CPU4_MEM1] * 12)])
    assert tasks.launch == {"big": 5}
    assert group.launch == {"big": 6}


def test_node_holding_group_bundles_and_tasks_stays_exempt_from_upscaling_speed():
    # 5 bigs already pending: no room for tasks on new bigs. A PACK bundle and a task each
    # get a small, then merge onto one big: it holds the group's bundle, so it launches.
    pending = [node(f"p{i}", "big", pending=True, free={}) for i in range(5)]
    reply = decide(
        types(SMALL_MEM, BIG_MEM),
        pending,
        placement_groups=[pg(PACK, {"CPU": 4, "memory": 2})],
        demands=[Demand({"CPU": 3, "memory": 1}, 1)],
    )
    assert reply.launch == {"big": 1}


def test_gpu_work_merges_onto_a_gpu_type_before_cpu_work_fills_it():
    # A PACK group's two bundles get a cpu node each, two GPU tasks a gpu-1 each. gpu-2 has no
    # more CPUs or GPUs than one cpu and both gpu-1 nodes; taking the cpu nodes first (they
    # are fuller) would fill its CPUs and leave the GPUs unused: no merge at all.
    t = types(
        spec("gpu-1", {"CPU": 2, "GPU": 1, "memory": 2}),
        spec("cpu", {"CPU": 4, "memory": 40}),
        spec("gpu-2", {"CPU": 6, "GPU": 2, "memory": 64}),
    )
    reply = decide(
        t,
        placement_groups=[pg(PACK, *[{"CPU": 3, "memory": 30}] * 2)],
        demands=[Demand({"CPU": 1, "GPU": 1, "memory": 1}, 2)],
    )
    assert reply.launch == {"cpu": 1, "gpu-2": 1}


# -- GPU types ---------------------------------------------------------------------------


def test_cpu_work_never_launches_a_gpu_type_when_a_cpu_type_fits():
    t = types(spec("cpu", {"CPU": 4}, cost=10.0), spec("gpu", {"CPU": 4, "GPU": 1}, cost=1.0))
    # gpu is 10x cheaper but has a GPU; cpu fits {CPU: 2} -> cpu
    assert decide(t, demands=[Demand({"CPU": 2}, 1)]).launch == {"cpu": 1}


def test_cpu_work_capped_by_max_workers_not_moved_to_a_gpu_type():
    # Ray's example: 10 x cpu (the global max), never the gpu type for CPU work
    t = types(spec("cpu", {"CPU": 1}), spec("gpu", {"CPU": 100, "GPU": 1}))
    reply = decide(t, max_workers=10, upscaling_speed=9999, demands=[Demand({"CPU": 1}, 100)])
    assert reply.launch == {"cpu": 10}
    assert infeasible(reply) == [({"CPU": 1}, 90, no_room(10))]


def test_cpu_work_launches_a_gpu_type_when_only_it_fits():
    # 8 CPUs: cpu (4) cannot hold it, gpu (8) can
    assert decide(types(CPU4, GPU8), demands=[Demand({"CPU": 8}, 1)]).launch == {"gpu": 1}


def test_cpu_work_uses_spare_cpus_of_gpu_nodes_launched_for_gpu_work():
    demands = [Demand({"CPU": 4}, 1), Demand({"CPU": 1, "GPU": 1}, 1)]
    reply = decide(types(CPU4, GPU8), demands=demands)
    # GPU task -> 1 gpu node (8 CPUs, 7 left); the 4-CPU task fits in the 7 spare CPUs
    assert reply.launch == {"gpu": 1}


def test_gpu_only_shape_placed_before_cpu_work_for_least_capacity():
    demands = [Demand({"GPU": 1}, 1), Demand({"CPU": 4}, 1)]
    reply = decide(types(CPU4, GPU8), demands=demands)
    # the gpu node is needed anyway (8 CPUs free); {CPU: 4} fits there: gpu x1 only
    assert reply.launch == {"gpu": 1}


# -- infeasible shapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "count", "reason"),
    [
        ({"TPU": 1}, 7, "no node type has enough TPU"),
        ({"CPU": 64}, 2, "no node type has enough CPU"),
        ({"CPU": 1, "TPU": 2}, 1, "no node type has enough TPU"),
        # CPU 8 exists (cpu) and GPU 1 exists (gpu), never on the same type
        ({"CPU": 8, "GPU": 1}, 3, "no single node type has all of these resources"),
    ],
    ids=["missing", "too-much", "one-missing", "not-together"],
)
def test_shape_no_type_can_hold_is_infeasible_and_launches_nothing(bundle, count, reason):
    t = types(spec("cpu", {"CPU": 8}), spec("gpu", {"CPU": 4, "GPU": 1}))
    reply = decide(t, demands=[Demand(bundle, count)])
    assert reply.launch == {}
    assert infeasible(reply) == [(bundle, count, reason)]


def test_infeasible_shape_does_not_block_feasible_ones():
    demands = [Demand({"TPU": 1}, 3), Demand({"CPU": 4}, 2)]
    reply = decide(types(CPU4), demands=demands)
    # 2 x 4 CPUs -> 2 nodes; TPU reported, nothing launched for it
    assert reply.launch == {"cpu": 2}
    assert infeasible(reply) == [({"TPU": 1}, 3, "no node type has enough TPU")]


def test_demand_beyond_max_workers_launches_up_to_the_max():
    t = types(spec("cpu", {"CPU": 4}, max_workers=3))
    reply = decide(t, [busy("w", "cpu")], demands=[Demand({"CPU": 4}, 10)])
    # 3 - 1 existing = 2 nodes hold 2; 10 - 2 = 8 left for want of room
    assert reply.launch == {"cpu": 2}
    assert infeasible(reply) == [({"CPU": 4}, 8, no_room())]


def test_global_max_shared_between_types():
    t = types(spec("a", {"CPU": 4}), spec("b", {"CPU": 4, "GPU": 1}))
    demands = [Demand({"CPU": 4}, 10), Demand({"CPU": 4, "GPU": 1}, 2)]
    reply = decide(t, demands=demands, max_workers=3)
    # GPU shape first: b x2; 3 - 2 = 1 slot: a x1 holds 1 of 10 -> 9 left
    assert reply.launch == {"a": 1, "b": 2}
    assert infeasible(reply) == [({"CPU": 4}, 9, no_room(3))]


# -- 4. placement groups -----------------------------------------------------------------

SMALL4_BIG16 = types(spec("small", {"CPU": 4}), spec("big", {"CPU": 16}))


def test_strict_pack_needs_one_node_holding_all_bundles():
    reply = decide(SMALL4_BIG16, placement_groups=[pg(STRICT_PACK, *[{"CPU": 2}] * 3)])
    # 3 x 2 = 6 CPUs on one node: small (4) cannot, big (16) can
    assert reply.launch == {"big": 1}


def test_pack_is_best_effort_and_may_use_several_nodes():
    reply = decide(SMALL4_BIG16, placement_groups=[pg(PACK, *[{"CPU": 2}] * 3)])
    # 2 per small node -> 2 small = 2 x 4/16 = 0.5 < 1 big = 1.0
    assert reply.launch == {"small": 2}


def test_strict_pack_on_an_existing_node():
    nodes = [node("w", "small", idle_s=1000)]
    reply = decide(SMALL4_BIG16, nodes, placement_groups=[pg(STRICT_PACK, *[{"CPU": 2}] * 2)])
    # 2 + 2 = 4 CPUs fit w's 4 free; w holds the group so is not idle-terminated
    assert reply.launch == {}
    assert reply.terminate == []


def test_strict_pack_too_big_for_any_type_is_infeasible():
    group = pg(STRICT_PACK, {"CPU": 12}, {"CPU": 8})
    reply = decide(SMALL4_BIG16, placement_groups=[group])
    # each bundle fits big, together 20 > 16
    reason = "placement group STRICT_PACK of 2 bundles: no node type holds all bundles together"
    assert reply.launch == {}
    assert infeasible(reply) == [({"CPU": 12}, 1, reason), ({"CPU": 8}, 1, reason)]


def test_strict_spread_one_node_per_bundle():
    reply = decide(SMALL4_BIG16, placement_groups=[pg(STRICT_SPREAD, *[{"CPU": 1}] * 3)])
    # 3 bundles on 3 distinct nodes; 1 CPU each fits small -> small x3 (not one node)
    assert reply.launch == {"small": 3}


def test_strict_spread_uses_existing_nodes_then_new_ones():
    nodes = [node("w1", "small", idle_s=1000), node("w2", "small", idle_s=1000)]
    group = pg(STRICT_SPREAD, *[{"CPU": 1}] * 3)
    reply = decide(SMALL4_BIG16, nodes, placement_groups=[group])
    # w1, w2 hold one bundle each (so they are needed, not idle-terminated); 1 new small
    assert reply.launch == {"small": 1}
    assert reply.terminate == []


def test_strict_spread_beyond_max_launches_nothing():
    t = types(spec("cpu", {"CPU": 4}, max_workers=2))
    reply = decide(t, placement_groups=[pg(STRICT_SPREAD, *[{"CPU": 1}] * 3)])
    # 3 distinct nodes needed, max 2 -> the group is not placed; nothing launched
    assert reply.launch == {}
    reason = f"placement group STRICT_SPREAD of 3 bundles: {no_room()}"
    assert infeasible(reply) == [({"CPU": 1}, 3, reason)]


def test_spread_is_best_effort_and_may_share_a_node():
    group = pg(SPREAD, *[{"CPU": 1}] * 4)
    reply = decide(types(CPU4), [node("w", "cpu", idle_s=1000)], placement_groups=[group])
    # 4 x 1 CPU fit w's 4 free CPUs: no new node, and w holds them (not idle-terminated)
    assert reply.launch == {}
    assert reply.terminate == []
    assert reply.infeasible == []
    # with no node: one 4-CPU node for all four bundles, not four nodes
    assert decide(types(CPU4), placement_groups=[group]).launch == {"cpu": 1}


def test_pack_beyond_max_launches_nothing():
    t = types(spec("cpu", {"CPU": 4}, max_workers=1))
    reply = decide(t, placement_groups=[pg(PACK, *[{"CPU": 4}] * 2)])
    # 2 nodes needed, max 1: the group is not half placed, and it is reported
    assert reply.launch == {}
    reason = f"placement group PACK of 2 bundles: {no_room()}"
    assert infeasible(reply) == [({"CPU": 4}, 2, reason)]


@pytest.mark.parametrize(("strategy", "expected"), [(STRICT_PACK, 1), (STRICT_SPREAD, 2)])
def test_strict_bundles_take_capacity_from_tasks(strategy, expected):
    group = pg(strategy, {"CPU": 2}, {"CPU": 2})
    reply = decide(
        types(CPU4), [node("w", "cpu")], placement_groups=[group], demands=[Demand({"CPU": 3})]
    )
    # STRICT_PACK: 4 CPUs on w, full; the 3-CPU task gets a new node.
    # STRICT_SPREAD: 2 on w, 2 on a new node, 2 left on each; the task gets a third node.
    assert reply.launch == {"cpu": expected}


def test_strict_spread_exempt_from_upscaling_speed():
    # Ray's example: 8 x p2.xlarge (cap max(5, 1) = 5 does not apply); no bigger type swapped in
    t = types(
        spec("p2.xlarge", {"CPU": 16, "GPU": 1}, max_workers=10),
        spec("p2.8xlarge", {"CPU": 32, "GPU": 8}),
    )
    reply = decide(t, placement_groups=[pg(STRICT_SPREAD, *[{"GPU": 1}] * 8)])
    assert reply.launch == {"p2.xlarge": 8}
    assert reply.infeasible == []


@pytest.mark.parametrize(
    ("bundles", "expected"),
    [
        # group: 8 nodes, beyond the cap of 5: all 8; the room is then max(5, 8) - 8 = 0
        (8, {"cpu": 8}),
        # group: 2 nodes; room max(5, 2) - 2 = 3 more for the 20 tasks
        (2, {"cpu": 5}),
    ],
)
def test_placement_group_nodes_exempt_but_counted_by_upscaling_speed(bundles, expected):
    reply = decide(
        types(spec("cpu", {"CPU": 1})),
        placement_groups=[pg(STRICT_SPREAD, *[{"CPU": 1}] * bundles)],
        demands=[Demand({"CPU": 1}, 20)],
    )
    assert reply.launch == expected
    assert reply.infeasible == []


def test_placement_group_with_an_impossible_bundle_launches_nothing():
    group = pg(PACK, {"CPU": 1}, {"TPU": 1}, {"CPU": 1})
    reply = decide(types(CPU4), placement_groups=[group])
    reason = "placement group PACK of 3 bundles: no node type has enough TPU"
    # no node for the CPU bundles either; every bundle reported
    assert reply.launch == {}
    assert infeasible(reply) == [({"CPU": 1}, 2, reason), ({"TPU": 1}, 1, reason)]


def test_failed_placement_group_leaves_its_capacity_to_other_demand():
    nodes = [node("w", "cpu", idle_s=1000)]
    reply = decide(
        types(CPU4),
        nodes,
        max_workers=1,
        placement_groups=[pg(STRICT_SPREAD, {"CPU": 4}, {"CPU": 4})],
        demands=[Demand({"CPU": 4}, 1)],
    )
    # group: w + 1 new node, but 1 worker = global max 1 -> rolled back; the task gets w
    assert reply.launch == {}
    assert reply.terminate == []  # w holds the task
    reason = f"placement group STRICT_SPREAD of 2 bundles: {no_room(1)}"
    assert infeasible(reply) == [({"CPU": 4}, 2, reason)]


def test_second_placement_group_uses_a_node_planned_for_the_first():
    groups = [pg(STRICT_PACK, {"CPU": 2}, {"CPU": 2})] * 2
    # first: 4 CPUs on a new 8-CPU node (4 left); second: 4 CPUs fit those -> 1 node
    assert decide(types(spec("cpu", {"CPU": 8})), placement_groups=groups).launch == {"cpu": 1}


# -- 5. request_resources constraints ----------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "constraint", "expected"),
    [
        ([busy("b", "cpu")], Demand({"CPU": 4}, 1), {}),  # b's total 4 holds it, usage ignored
        ([busy("b", "cpu")], Demand({"CPU": 4}, 3), {"cpu": 2}),  # 3 - 1 existing
        ([node("p", "cpu", pending=True)], Demand({"CPU": 2}, 2), {}),  # pending p: 2 x 2
        ([], Demand({"CPU": 4}, 20), {"cpu": 20}),  # not capped at 5 by upscaling_speed
    ],
    ids=["busy-total", "more", "pending", "uncapped"],
)
def test_constraint_against_total_capacity(nodes, constraint, expected):
    reply = decide(types(CPU4), nodes, constraints=[constraint])
    assert reply.launch == expected
    assert reply.infeasible == []


def test_constraint_counts_min_workers_nodes():
    t = types(spec("cpu", {"CPU": 4}, min_workers=2))
    # 2 min_workers nodes (8 CPUs) hold 2 of 3 x 4 CPUs: 1 more
    reply = decide(t, constraints=[Demand({"CPU": 4}, 3)])
    assert reply.launch == {"cpu": 3}
    assert [(x.node_type, x.count) for x in reply.launches] == [("cpu", 2), ("cpu", 1)]


def test_constraint_and_demand_on_the_same_free_node():
    reply = decide(
        types(CPU4),
        [node("w", "cpu")],
        constraints=[Demand({"CPU": 4}, 2)],
        demands=[Demand({"CPU": 4}, 1)],
    )
    # cluster total 4 holds 1 of 2 constrained: 1 new node; w's 4 free CPUs hold the task
    # (the constraint reserves no real capacity), so no second node
    assert reply.launch == {"cpu": 1}
    assert reply.launches[0].reason == "request_resources 2 x {CPU: 4}"


def test_constraint_beyond_max_workers_is_reported():
    t = types(spec("cpu", {"CPU": 4}, max_workers=2))
    reply = decide(t, constraints=[Demand({"CPU": 4}, 5)])
    # 2 nodes hold 2 of 5 -> 3 left
    assert reply.launch == {"cpu": 2}
    assert infeasible(reply) == [({"CPU": 4}, 3, no_room())]


def test_nodes_a_constraint_needs_are_not_idle_terminated():
    t = types(spec("small", {"CPU": 2}), spec("big", {"CPU": 8}))
    nodes = [node("s", "small", idle_s=1000), node("b", "big", idle_s=1000)]
    reply = decide(t, nodes, constraints=[Demand({"CPU": 8}, 1)])
    # only b can hold {CPU: 8}: b kept; s idle 1000 >= 300, min 0 -> terminated
    assert terminated(reply) == [("s", IDLE)]
    assert reply.launch == {}


# -- 6. upscaling_speed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("speed", "running", "pending", "expected"),
    [
        (1.0, 0, 0, 5),  # max(5, 0) - 0
        (1.0, 10, 0, 10),  # max(5, 10) - 0
        (1.0, 10, 3, 7),  # max(5, 10) - 3 pending
        (0.5, 30, 0, 15),  # floor(0.5 x 30) = 15
        (0.5, 4, 0, 5),  # floor(2) -> max(5, 2) = 5
        (2.5, 3, 0, 7),  # floor(7.5) = 7
        (1.0, 2, 6, 0),  # max(5, 2) - 6 < 0 -> none
        (9999.0, 0, 0, 100),  # int(9999 x max(0, 1)) = 9999: all 100
        (7.0, 0, 0, 7),  # int(7 x max(0, 1)) = 7
        (5.9, 1, 0, 5),  # int(5.9) = 5
        (6.0, 1, 1, 5),  # 6 - 1 pending
    ],
)
def test_upscaling_speed_caps_pending_nodes(speed, running, pending, expected):
    t = types(spec("cpu", {"CPU": 1}, max_workers=1000))
    nodes = [busy(f"r{i}", "cpu") for i in range(running)]
    nodes += [node(f"p{i}", "cpu", pending=True) for i in range(pending)]
    # the pending nodes hold `pending` tasks; 100 more tasks need 100 new nodes
    demands = [Demand({"CPU": 1}, pending + 100)]
    reply = decide(t, nodes, max_workers=1000, upscaling_speed=speed, demands=demands)
    assert reply.launch == ({"cpu": expected} if expected else {})
    assert reply.infeasible == []


def test_upscaling_speed_is_per_type():
    t = types(spec("a", {"CPU": 1}), spec("b", {"X": 1}))
    nodes = [busy(f"a{i}", "a") for i in range(20)]
    demands = [Demand({"CPU": 1}, 100), Demand({"X": 1}, 100)]
    reply = decide(t, nodes, max_workers=1000, demands=demands)
    # a: max(5, 1 x 20) = 20; b: max(5, 0) = 5
    assert reply.launch == {"a": 20, "b": 5}


def test_min_workers_not_capped_but_count_as_pending():
    t = types(spec("cpu", {"CPU": 1}, min_workers=8))
    reply = decide(t, demands=[Demand({"CPU": 1}, 20)])
    # 8 min nodes uncapped (> 5); they hold 8 tasks, 12 more capped: max(5, 0) - 8 < 0
    assert reply.launch == {"cpu": 8}


def test_constraint_not_capped_but_counts_as_pending():
    reply = decide(
        types(spec("cpu", {"CPU": 1})),
        constraints=[Demand({"CPU": 1}, 8)],
        demands=[Demand({"CPU": 1}, 20)],
    )
    # 8 constraint nodes uncapped, hold 8 tasks; 12 more capped: max(5, 0) - 8 < 0
    assert reply.launch == {"cpu": 8}


def test_capped_launches_cut_last_first():
    t = types(spec("a", {"CPU": 2}), spec("b", {"X": 1}))
    demands = [Demand({"CPU": 1}, 8), Demand({"CPU": 2}, 4), Demand({"X": 1}, 3)]
    reply = decide(t, [busy("r", "a")], demands=demands, upscaling_speed=5)
    # a: 4 nodes for {CPU: 2}, then 4 for {CPU: 1}; room max(5, int(5 x 1)) = 5 cuts the
    # last 3; b: 3 < 5, all
    assert [(x.node_type, x.count, x.reason) for x in reply.launches] == [
        ("a", 4, "4 pending {CPU: 2}"),
        ("a", 1, "8 pending {CPU: 1}"),
        ("b", 3, "3 pending {X: 1}"),
    ]
    assert reply.infeasible == []  # held back, not infeasible


# -- 7. idle termination -----------------------------------------------------------------

IDLE_TYPES = types(
    CPU4,
    spec("slow", {"CPU": 4}, idle_timeout_s=1000),
    spec("fast", {"CPU": 4}, idle_timeout_s=10),
    spec("gpu", {"CPU": 4, "GPU": 1}),
    HEAD,
)


@pytest.mark.parametrize(
    ("view", "goes"),
    [
        (node("n", "cpu", idle_s=299), False),  # 299 < 300
        (node("n", "cpu", idle_s=301), True),  # 301 >= 300
        (node("n", "cpu", idle_s=300), True),  # 300 >= 300: at the timeout exactly
        (node("n", "slow", idle_s=500), False),  # 500 < its own 1000
        (node("n", "fast", idle_s=11), True),  # 11 >= its own 10
        (node("n", "fast", idle_s=10), True),  # 10 >= its own 10
        (node("n", "fast", idle_s=9), False),  # 9 < its own 10
        (node("n", "cpu", free={"CPU": 3}, idle_s=1000), False),  # 1 CPU in use
        (node("n", "gpu", free={"CPU": 4}, idle_s=1000), False),  # its GPU is in use
        (node("n", "cpu", pending=True, idle_s=1000), False),  # not running yet
        (node("n", "head", head=True, idle_s=1e9), False),  # never the head
    ],
    ids=[
        "below",
        "past",
        "at",
        "type-longer",
        "type-shorter",
        "type-at",
        "type-below",
        "busy",
        "gpu-busy",
        "pending",
        "head",
    ],
)
def test_idle_timeout(view, goes):
    reply = decide(IDLE_TYPES, [view], idle_timeout_s=300)
    assert terminated(reply) == ([("n", IDLE)] if goes else [])
    assert reply.launch == {}


def test_idle_termination_longest_idle_first_down_to_min_workers():
    t = types(spec("cpu", {"CPU": 4}, min_workers=1))
    nodes = [node("a", "cpu", idle_s=400), node("b", "cpu", idle_s=1000)]
    nodes.append(node("c", "cpu", idle_s=350))
    reply = decide(t, nodes)
    # all past 300; 3 workers - min 1 = 2 may go: b (1000), a (400); c stays
    assert terminated(reply) == [("b", IDLE), ("a", IDLE)]
    assert reply.terminate[0].detail == "1000 s, past its 300 s timeout"


def test_idle_node_pending_demand_is_placed_on_is_kept():
    t = types(spec("small", {"CPU": 2}), spec("big", {"CPU": 8}))
    nodes = [node("s", "small", idle_s=1000), node("b", "big", idle_s=1000)]
    reply = decide(t, nodes, demands=[Demand({"CPU": 8}, 1)])
    # only b's 8 free CPUs hold the task: b kept; s goes
    assert terminated(reply) == [("s", IDLE)]
    assert reply.launch == {}


def test_idle_termination_with_new_launches_for_work_idle_node_cannot_hold():
    t = types(CPU4, GPU8)
    nodes = [node("c", "cpu", idle_s=1000)]
    reply = decide(t, nodes, demands=[Demand({"CPU": 1, "GPU": 1}, 1)])
    # the GPU task cannot run on c: 1 gpu node; c idle 1000 >= 300 -> terminated
    assert reply.launch == {"gpu": 1}
    assert terminated(reply) == [("c", IDLE)]


# -- scale and determinism ---------------------------------------------------------------


def _thousand_nodes() -> list[NodeView]:
    # node i has i % 17 of 16 CPUs free (16: fully idle), all idle for 1000 s
    return [
        node(f"w{i:04}", "cpu", free=None if i % 17 == 16 else {"CPU": i % 17}, idle_s=1000)
        for i in range(1000)
    ]


def test_large_demand_against_a_thousand_nodes():
    t = types(spec("cpu", {"CPU": 16}, max_workers=10_000))
    reply = decide(
        t,
        _thousand_nodes(),
        max_workers=10_000,
        upscaling_speed=10,
        demands=[Demand({"CPU": 1}, 100_000)],
    )
    # free: 58 cycles x (0+..+16 = 136) + (0+..+13 = 91) = 7979; 100000 - 7979 = 92021
    # -> ceil(92021 / 16) = 5752 nodes; cap max(5, 10 x 1000) = 10000; idle nodes all used
    assert reply.launch == {"cpu": 5752}
    assert reply.infeasible == []
    assert reply.terminate == []


def test_large_demand_capped_by_max_workers():
    t = types(spec("cpu", {"CPU": 16}, max_workers=10_000))
    reply = decide(
        t,
        _thousand_nodes(),
        max_workers=1500,
        upscaling_speed=10,
        demands=[Demand({"CPU": 1}, 100_000)],
    )
    # 1500 - 1000 = 500 new nodes x 16 = 8000; 92021 - 8000 = 84021 left
    assert reply.launch == {"cpu": 500}
    assert infeasible(reply) == [({"CPU": 1}, 84_021, no_room(1500))]


def test_same_request_same_reply():
    t = types(HEAD, spec("cpu", {"CPU": 4}, min_workers=1), GPU8, spec("small", {"CPU": 2}))
    req = request(
        t,
        [
            node("h", "head", head=True),
            node("c1", "cpu", idle_s=900),
            node("c2", "cpu", free={"CPU": 1}),
            node("s1", "small", idle_s=400),
            node("g1", "gpu", pending=True),
        ],
        max_workers=20,
        demands=[Demand({"CPU": 1}, 30), Demand({"CPU": 1, "GPU": 1}, 3), Demand({"TPU": 1})],
        placement_groups=[pg(STRICT_SPREAD, *[{"CPU": 2}] * 3), pg(PACK, {"CPU": 4}, {"GPU": 1})],
        constraints=[Demand({"CPU": 4}, 4)],
        upscaling_speed=2.0,
    )
    first = schedule(req)
    assert schedule(req) == first
    assert schedule(copy.deepcopy(req)) == first
    assert first.launches  # a non-trivial decision


# -- defaults of the request types -------------------------------------------------------


def test_node_type_spec_defaults_no_min_and_no_max():
    # NodeTypeSpec defaults: min_workers 0, max_workers 0 (the type may not be launched)
    reply = schedule(ScheduleRequest({"cpu": NodeTypeSpec("cpu", {"CPU": 4})}, 10, []))
    assert reply.launch == {}  # min_workers 0: nothing to launch on its own
    t = {"cpu": NodeTypeSpec("cpu", {"CPU": 4}, max_workers=5)}
    assert schedule(ScheduleRequest(t, 10, [])).launch == {}  # min_workers 0 by default
    t = {"cpu": NodeTypeSpec("cpu", {"CPU": 4})}
    reply = schedule(ScheduleRequest(t, 10, [], demands=[Demand({"CPU": 4})]))
    # max_workers 0 by default: no room for the task
    assert reply.launch == {}
    assert infeasible(reply) == [({"CPU": 4}, 1, no_room(10))]


def test_node_view_defaults_a_running_worker_idle_for_no_time():
    # NodeView defaults: not the head, not pending, all free, idle 0 s
    reply = decide(types(CPU4), [NodeView("w", "cpu", idle_s=10)], idle_timeout_s=5)
    assert terminated(reply) == [("w", IDLE)]  # a running worker, idle 10 >= 5
    reply = decide(types(CPU4), [NodeView("w", "cpu")], idle_timeout_s=0.5)
    assert reply.terminate == []  # idle 0 s < 0.5


# -- found by mutation testing: limits ---------------------------------------------------


def test_lowered_type_max_terminates_idle_before_pending():
    t = types(spec("cpu", {"CPU": 4}, max_workers=1))
    # both idle 0 s; z is running with nothing in use, a pending: 2 > max 1 -> the idle one
    # goes first, whatever the ids' order
    reply = decide(t, [node("z", "cpu"), node("a", "cpu", pending=True)])
    assert terminated(reply) == [("z", MAX)]


@pytest.mark.parametrize(
    ("cluster_max", "dropped"),
    [
        # 4 workers - 1 = 3 to drop: a1, a2 (a above its min 1: 3 -> 2 -> 1), then a is at
        # its min, so busy b1 (b above its min 0); a3 stays for a's min_workers
        (1, ["a1", "a2", "b1"]),
        # 4 - 2 = 2 to drop: a1, a2 (a: 3 -> 2 -> 1, still >= min 1); busy b1 stays
        (2, ["a1", "a2"]),
    ],
)
def test_lowered_global_max_counts_down_each_types_workers(cluster_max, dropped):
    t = types(spec("a", {"CPU": 4}, min_workers=1), spec("b", {"CPU": 4}))
    nodes = [node("a1", "a", idle_s=30), node("a2", "a", idle_s=20), node("a3", "a", idle_s=10)]
    nodes.append(busy("b1", "b"))
    reply = decide(t, nodes, max_workers=cluster_max)
    assert terminated(reply) == [(i, MAX) for i in dropped]


def test_resource_only_the_node_reports_counts_for_idleness():
    # the node's total has "foo", which no type, demand or constraint names; foo is in use
    nodes = [node("w", "cpu", total={"CPU": 4, "foo": 1}, free={"CPU": 4}, idle_s=1000)]
    assert decide(types(CPU4), nodes).terminate == []  # foo 0 of 1 free: busy
    nodes = [node("w", "cpu", total={"CPU": 4, "foo": 1}, idle_s=1000)]
    assert terminated(decide(types(CPU4), nodes)) == [("w", IDLE)]  # all free: idle


# -- found by mutation testing: placing --------------------------------------------------


def test_empty_shape_needs_no_node():
    # {} (e.g. a zero-CPU actor) runs anywhere: no launch, nothing infeasible, and it does
    # not keep an idle node (idle 1000 >= 300) alive
    reply = decide(types(CPU4), demands=[Demand({}, 3)])
    assert reply.launch == {}
    assert reply.infeasible == []
    reply = decide(types(CPU4), [node("w", "cpu", idle_s=1000)], demands=[Demand({}, 3)])
    assert reply.launch == {}
    assert terminated(reply) == [("w", IDLE)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, {}),  # w1 (4 free) holds {CPU: 4}; w2 (2 free) holds the one {CPU: 2}
        (2, {"cpu": 1}),  # w2 holds one of two {CPU: 2}: 1 new node for the other
    ],
)
def test_nodes_after_the_one_that_took_the_last_copy_stay_available(count, expected):
    nodes = [node("w1", "cpu"), node("w2", "cpu", free={"CPU": 2})]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 4}), Demand({"CPU": 2}, count)])
    assert reply.launch == expected


def test_node_too_small_for_one_shape_stays_available_for_the_next():
    nodes = [node("w", "cpu", free={"CPU": 1})]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 4}), Demand({"CPU": 1})])
    # {CPU: 4} does not fit w's 1 free CPU: 1 new node (full); {CPU: 1} fits w
    assert reply.launch == {"cpu": 1}


@pytest.mark.parametrize(
    ("count", "used"),
    [
        (3, ["w0", "w1"]),  # 2 per node: w0 holds 2, w1 the 3rd; w2 unused
        (4, ["w0", "w1"]),  # w0 and w1 hold 2 each; w2 unused
    ],
)
def test_identical_nodes_only_those_used_are_kept(count, used):
    nodes = [node(f"w{i}", "cpu", idle_s=1000) for i in range(3)]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 2}, count)])
    assert reply.launch == {}
    # the unused one, idle 1000 >= 300, goes
    assert terminated(reply) == [(n, IDLE) for n in ["w0", "w1", "w2"] if n not in used]


def test_identical_nodes_left_over_by_one_shape_hold_the_next():
    nodes = [node(f"w{i}", "cpu", idle_s=1000) for i in range(3)]
    demands = [Demand({"CPU": 3}, 2), Demand({"CPU": 1}, 4)]
    reply = decide(types(CPU4), nodes, demands=demands)
    # {CPU: 3} x2 on w0, w1 (1 free each); {CPU: 1} x4: 1 + 1 there, 2 on w2's 4
    assert reply.launch == {}
    assert reply.terminate == []


def test_shape_held_by_existing_nodes_is_not_infeasible_for_want_of_a_type():
    # w reports 16 CPUs (its type says 4): it holds 2 x 8 CPUs, which no type could
    nodes = [node("w", "cpu", total={"CPU": 16})]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 8}, 2)])
    assert reply.launch == {}
    assert reply.infeasible == []


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        ({"CPU": -1}, {"cpu": 1}),  # 3 x 1 CPU: none fits w; 1 new node holds all 3
        ({"CPU": 0}, {"cpu": 1}),
    ],
)
def test_node_using_more_than_its_total_holds_nothing(free, expected):
    # available = total - used is negative when Ray reports more used than the total
    nodes = [node(f"w{i}", "cpu", free=free) for i in range(5)]
    reply = decide(types(CPU4), nodes, demands=[Demand({"CPU": 1}, 3)])
    assert [(x.node_type, x.count) for x in reply.launches] == [("cpu", 1)]
    assert reply.launch == expected
    reply = decide(types(CPU4), nodes[:1], placement_groups=[pg(STRICT_PACK, {"CPU": 1})])
    assert reply.launch == {"cpu": 1}  # the group's one bundle does not fit w either


def test_type_with_zero_cost_is_preferred():
    t = types(spec("free", {"CPU": 4}, cost=0.0), spec("paid", {"CPU": 8}, cost=1.0))
    # every type has a cost: free costs 0 per node, paid 1 -> free
    assert decide(t, demands=[Demand({"CPU": 4})]).launch == {"free": 1}


def test_type_holding_more_within_ten_percent_wins_over_a_cheaper_fit_per_copy():
    t = types(spec("small", {"CPU": 2}, cost=1.0), spec("big", {"CPU": 4}, cost=2.1))
    # 4 x 1 CPU: small holds 2 for 1.0 (0.5 per copy), big holds 4 for 2.1 (0.525 per
    # copy, within 10%): big holds more -> 1 big, not 2 small
    assert decide(t, demands=[Demand({"CPU": 1}, 4)]).launch == {"big": 1}


def test_reason_names_only_the_resources_no_type_has_enough_of():
    # memory in bytes: 16e9 - 1e-9 == 16e9 in floats, and cpu has exactly 16e9
    t = types(spec("cpu", {"CPU": 8, "memory": 16e9}))
    reply = decide(t, demands=[Demand({"CPU": 16, "memory": 16e9})])
    assert infeasible(reply) == [({"CPU": 16, "memory": 16e9}, 1, "no node type has enough CPU")]


# -- found by mutation testing: constraints, placement groups, upscaling_speed -----------


def test_node_launched_for_a_constraint_has_all_its_capacity_free_for_demand():
    t = types(spec("a", {"CPU": 8}), spec("b", {"CPU": 2}))
    # constraint 4 x 2 CPUs: a holds 4 (1 node), b holds 1 (4 nodes), same capacity per
    # unit -> a x1; the constraint reserves nothing, so the task's 8 CPUs fit on it
    reply = decide(t, constraints=[Demand({"CPU": 2}, 4)], demands=[Demand({"CPU": 8})])
    assert reply.launch == {"a": 1}


def test_strict_spread_uses_each_planned_node_once_not_twice():
    t = types(spec("a", {"CPU": 2}, min_workers=2), spec("b", {"CPU": 2, "GPU": 1}))
    group = pg(STRICT_SPREAD, {"CPU": 1, "GPU": 1}, {"CPU": 1}, {"CPU": 1})
    reply = decide(t, placement_groups=[group])
    # the GPU bundle on a new b node; the two CPU bundles on the 2 min_workers a nodes
    assert reply.launch == {"a": 2, "b": 1}


def test_failed_placement_group_does_not_keep_idle_nodes():
    nodes = [node("w", "cpu", idle_s=1000)]
    group = pg(STRICT_SPREAD, {"CPU": 4}, {"CPU": 4})
    reply = decide(types(CPU4), nodes, max_workers=1, placement_groups=[group])
    # w + a new node, but global max 1: rolled back; w is then idle 1000 >= 300 -> goes
    assert reply.launch == {}
    assert terminated(reply) == [("w", IDLE)]


def test_pack_group_exempt_from_upscaling_speed():
    group = pg(PACK, *[{"CPU": 1}] * 8)
    # 8 one-CPU nodes, beyond max(5, 1) = 5: placement groups are not capped
    assert decide(types(spec("cpu", {"CPU": 1})), placement_groups=[group]).launch == {"cpu": 8}


def test_strict_pack_on_an_existing_node_leaves_the_rest_free():
    t = types(spec("cpu", {"CPU": 8}))
    group = pg(STRICT_PACK, {"CPU": 1}, {"CPU": 1})
    reply = decide(t, [node("w", "cpu")], placement_groups=[group], demands=[Demand({"CPU": 6})])
    # the group takes 2 of w's 8; the task's 6 fit the 6 left
    assert reply.launch == {}


def test_strict_pack_on_one_node_leaves_the_next_nodes_available():
    nodes = [node("w1", "cpu"), node("w2", "cpu", free={"CPU": 2})]
    group = pg(STRICT_PACK, {"CPU": 1})
    reply = decide(types(CPU4), nodes, placement_groups=[group], demands=[Demand({"CPU": 2}, 2)])
    # the bundle on w1 (3 left): one task there, the other on w2's 2
    assert reply.launch == {}


def test_upscaling_speed_cuts_a_single_node():
    # 6 one-CPU tasks -> 6 nodes; room max(5, 1) = 5: one cut
    reply = decide(types(spec("cpu", {"CPU": 1})), demands=[Demand({"CPU": 1}, 6)])
    assert reply.launch == {"cpu": 5}


@pytest.mark.parametrize("strategy", [PACK, SPREAD, STRICT_PACK, STRICT_SPREAD])
@pytest.mark.parametrize("nodes", [[], [node("w", "cpu", idle_s=1000)]], ids=["none", "idle"])
def test_placement_group_of_empty_bundles_needs_no_node(strategy, nodes):
    # {} and {CPU: 0} ask for nothing: placed without a node (was a ZeroDivisionError for
    # the strict strategies), and an idle w (1000 >= 300) is not kept for them
    group = pg(strategy, {}, {"CPU": 0})
    reply = decide(types(CPU4), nodes, placement_groups=[group])
    assert reply.launch == {}
    assert reply.infeasible == []
    assert terminated(reply) == [(n.id, IDLE) for n in nodes]
