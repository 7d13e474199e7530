"""The decide step alone (rayctl/autoscaler/decide.py): pure inputs, exact decisions."""

from __future__ import annotations

import pytest

from rayctl.autoscaler.decide import Move, Observation, Policy, WorkerView, decide
from rayctl.autoscaler.lifecycle import Phase
from rayctl.autoscaler.scheduler import NodeTypeSpec
from rayctl.runtime.nodes import Node, NodeKind, NodeState
from rayctl.runtime.ray_adapter import ClusterSnapshot, RayNode

NOW = 10_000.0
CPU1 = {"CPU": 1.0}
HEAD = Node("head", "head", NodeKind.HEAD, NodeState.RUNNING, "127.0.0.2", None)
TYPES = {
    "head": NodeTypeSpec("head", {"CPU": 0.0}, 0, 0),
    "w": NodeTypeSpec("w", CPU1, 0, 10),
    "big": NodeTypeSpec("big", {"CPU": 4.0}, 0, 10),
}


def policy(**changes) -> Policy:
    values = {
        "node_types": TYPES,
        "max_workers": 10,
        "upscaling_speed": 1.0,
        "idle_timeout_s": 60.0,
        "boot_timeout_s": 100.0,
    }
    return Policy(**{**values, **changes})


def worker(node_id: str, phase: Phase, node_type: str = "w", **view) -> WorkerView:
    node = Node(node_id, node_type, NodeKind.WORKER, NodeState.RUNNING, "127.0.0.9", None)
    return WorkerView(node, phase, **view)


def ray(node_id: str, *, idle_s: float = 0.0, used: dict | None = None) -> RayNode:
    status = "RUNNING" if used else "IDLE"
    return RayNode(
        node_id, "w", "127.0.0.9", status, idle_s, dict(CPU1), used or {}, f"r-{node_id}"
    )


def observe(*workers: WorkerView, demands=()) -> Observation:
    return Observation(HEAD, None, list(workers), ClusterSnapshot(nodes=[], demands=list(demands)))


def test_each_phase_moves_as_the_lifecycle_says():
    decision = decide(
        observe(
            worker("launched", Phase.LAUNCHED),
            worker("failed", Phase.FAILED, why="bootstrap failed: x"),
            worker("lost", Phase.LOST, why="its Ray is gone"),
            worker("due", Phase.TERMINATING, retry_at=NOW, why="idle"),
            worker("later", Phase.TERMINATING, retry_at=NOW + 1, why="idle"),
            worker("booting", Phase.BOOTING, boot_since=NOW - 100),  # exactly at the timeout
        ),
        policy(),
        backed_off=frozenset(),
        now=NOW,
    )
    assert [n.id for n in decision.boots] == ["launched"]
    assert decision.terminate == [
        ("failed", "bootstrap failed: x"),
        ("lost", "its Ray is gone"),
        ("due", "idle"),
    ]
    assert decision.moves == [
        Move("launched", Phase.LAUNCHED, Phase.BOOTING, "launched, not booting"),
        Move("failed", Phase.FAILED, Phase.TERMINATING, "bootstrap failed: x"),
        Move("lost", Phase.LOST, Phase.TERMINATING, "its Ray is gone"),
        Move("due", Phase.TERMINATING, Phase.TERMINATING, "retry: idle"),
    ]
    assert decision.cancel_boots == [] and decision.timed_out == []


def test_a_boot_past_its_timeout_is_cancelled_terminated_and_its_type_held_back():
    decision = decide(
        observe(worker("slow", Phase.BOOTING, boot_since=NOW - 100.5), demands=[(CPU1, 1)]),
        policy(),
        backed_off=frozenset(),
        now=NOW,
    )
    assert decision.cancel_boots == ["slow"]
    assert decision.terminate == [("slow", "not ready after 100 s")]
    assert decision.timed_out == [("w", "slow", "not ready after 100 s")]
    assert decision.moves == [
        Move("slow", Phase.BOOTING, Phase.TERMINATING, "not ready after 100 s")
    ]
    assert decision.launches == {"big": (1, decision.reply.launches[0].reason)}  # not w


def test_launches_of_one_type_are_one_entry_with_every_reason():
    spec = NodeTypeSpec("w", CPU1, 2, 10)  # min_workers 2, which hold 2 of the 3 tasks
    decision = decide(
        observe(demands=[(CPU1, 3)]),
        policy(node_types={**TYPES, "w": spec}),
        backed_off=frozenset(),
        now=NOW,
    )
    reasons = [launch.reason for launch in decision.reply.launches]
    assert len(reasons) == 2 and reasons[0] != reasons[1]
    assert decision.launches == {"w": (3, "; ".join(reasons))}


def test_idle_workers_are_drained_and_surplus_ones_terminated_and_their_boots_cancelled():
    idle = worker("idle", Phase.READY, ray=ray("idle", idle_s=61))
    booting = worker("booting", Phase.BOOTING, boot_since=NOW)
    decision = decide(
        observe(idle, booting),
        policy(max_workers=0),  # both over the cluster's max
        backed_off=frozenset(),
        now=NOW,
    )
    assert sorted(decision.terminate) == [
        (
            "booting",
            "max_workers: " + next(t.detail for t in decision.reply.terminate if t.id == "booting"),
        ),
        (
            "idle",
            "max_workers: " + next(t.detail for t in decision.reply.terminate if t.id == "idle"),
        ),
    ]
    assert decision.cancel_boots == ["booting"] and decision.drain == []
    assert sorted((m.node_id, m.source, m.target) for m in decision.moves) == [
        ("booting", Phase.BOOTING, Phase.TERMINATING),
        ("idle", Phase.READY, Phase.TERMINATING),
    ]

    only_idle = decide(observe(idle), policy(), backed_off=frozenset(), now=NOW)
    assert only_idle.terminate == [] and only_idle.cancel_boots == []
    ((node_id, ray_node_id, why),) = only_idle.drain
    assert (node_id, ray_node_id) == ("idle", "r-idle") and why.startswith("idle: ")
    assert [(m.node_id, m.source) for m in only_idle.moves] == [("idle", Phase.READY)]


def test_a_backed_off_type_keeps_its_workers_and_gets_no_new_ones():
    busy = [worker(f"b{i}", Phase.READY, ray=ray(f"b{i}", used=CPU1)) for i in range(2)]
    decision = decide(
        observe(*busy, demands=[(CPU1, 2)]),
        policy(),
        backed_off=frozenset({"w"}),
        now=NOW,
    )
    assert decision.reply.terminate == []  # its two workers are not over a max of 0
    assert decision.launches == {"big": (1, decision.reply.launches[0].reason)}


def test_booting_workers_count_as_pending_against_the_upscaling_cap():
    booting = [worker(f"p{i}", Phase.BOOTING, boot_since=NOW) for i in range(5)]
    decision = decide(
        observe(*booting, demands=[(CPU1, 10)]),
        policy(node_types={"head": TYPES["head"], "w": TYPES["w"]}),
        backed_off=frozenset(),
        now=NOW,
    )
    # five pending already: max(5, int(1 x max(0 running, 1))) = 5 allows no more this tick
    assert decision.launches == {}


def test_leaving_and_unready_workers_are_not_capacity():
    decision = decide(
        observe(
            worker("failed", Phase.FAILED, why="x"),
            worker("lost", Phase.LOST, why="y"),
            worker("going", Phase.TERMINATING, retry_at=NOW + 5, why="z"),
            demands=[(CPU1, 1)],
        ),
        policy(node_types={"head": TYPES["head"], "w": TYPES["w"]}),
        backed_off=frozenset(),
        now=NOW,
    )
    assert decision.launches["w"][0] == 1


@pytest.mark.parametrize("phase", [Phase.LAUNCHED, Phase.BOOTING])
def test_a_worker_not_in_ray_yet_holds_demand(phase: Phase):
    view = worker("p", phase, boot_since=NOW)
    decision = decide(observe(view, demands=[(CPU1, 1)]), policy(), backed_off=frozenset(), now=NOW)
    assert decision.launches == {}
