"""The reconciler and monitor on the fake provider: observe -> decide -> act under faults,
with an injected clock, exact counts of provider calls, and no Ray."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rayctl.autoscaler.lifecycle import TRANSITIONS, Phase, TransitionError, check_move
from rayctl.autoscaler.monitor import Monitor
from rayctl.autoscaler.reconciler import Reconciler, ReconcilerSettings
from rayctl.autoscaler.status import AutoscalerStatus, Event
from rayctl.errors import TransientError
from rayctl.providers import registry
from rayctl.providers.base import NodeKind, NodeStatus, Tag
from rayctl.providers.fake.instances import FakeProvider

CPU1 = {"CPU": 1.0}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sim:
    """A fake cluster (head booted) and a reconciler on it."""

    def __init__(self, tmp_path: Path, *, types: dict[str, Any] | None = None, **raw: Any):
        self.clock = Clock()
        config = registry.validate(
            {
                "cluster_name": "sim",
                "max_workers": raw.pop("max_workers", 10),
                "idle_timeout_minutes": 1,
                "provider": {"type": "fake", **raw.pop("provider", {})},
                "available_node_types": types
                or {"head": {"resources": {"CPU": 0}}, "worker": {"resources": CPU1}},
                "head_node_type": "head",
                **raw,
            }
        )
        self.config = config
        self.provider = FakeProvider(config, home=tmp_path, clock=self.clock)
        self.ray = self.provider.ray
        (self.head,) = self.provider.create_nodes("head", 1, {Tag.KIND: NodeKind.HEAD.value})
        self.ray.boot(self.head, self.head, threading.Event())
        self.provider.calls.clear()  # count the reconciler's calls only
        self.reconciler = self.new_reconciler()

    def new_reconciler(self) -> Reconciler:
        return Reconciler(
            self.config,
            self.provider,
            snapshot=self.ray.snapshot,
            drain=self.ray.drain,
            boot=self.ray.boot,
            clock=self.clock,
            settings=ReconcilerSettings(boot_timeout_s=60, backoff_base_s=30, retry_base_s=5),
        )

    def tick(self, reconciler: Reconciler | None = None):
        reconciler = reconciler or self.reconciler
        decision = reconciler.tick()
        reconciler.wait_for_boots()
        return decision

    def workers(self) -> list[Any]:
        return [n for n in self.provider.list_nodes() if n.kind is NodeKind.WORKER]

    def calls(self, method: str) -> int:
        return self.provider.calls[method]

    def events(self, action: str) -> list[Any]:
        doc = self.reconciler.status_document()
        return [e for e in [*doc.events, *doc.failures] if e.action == action]


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return Sim(tmp_path)


def test_demand_is_launched_in_one_call_per_type_and_booted(sim: Sim):
    sim.ray.set_demand([(CPU1, 3)])
    sim.tick()
    assert len(sim.workers()) == 3 and sim.calls("create_nodes") == 1
    alive = [n for n in sim.ray.snapshot("").nodes if n.alive]
    assert len(alive) == 4  # the head and three workers
    sim.ray.set_demand([])
    sim.tick()
    assert sim.calls("create_nodes") == 1  # nothing more
    assert [e.what for e in sim.events("ready")] != []


def test_a_node_that_cannot_be_terminated_is_retried_with_backoff_and_blocks_nothing(sim: Sim):
    sim.ray.set_demand([(CPU1, 2)])
    sim.tick()
    stuck, _ = sorted(n.id for n in sim.workers())
    sim.provider.faults.unterminatable_ids.add(stuck)
    sim.ray.set_demand([])
    sim.clock.advance(61)  # past the idle timeout
    sim.tick()
    assert sorted(n.id for n in sim.workers()) == [stuck]
    retry = sim.reconciler.status_document().terminating[stuck]
    assert retry.attempts == 1 and retry.next_at == sim.clock.now + 5
    assert "idle" in retry.reason and "cannot be terminated" in retry.error

    # Demand meanwhile is launched as usual, in the same tick as the failed termination.
    sim.ray.set_demand([(CPU1, 1)])
    terminations = sim.calls("terminate_nodes")
    sim.clock.advance(4)  # the retry is not due yet
    sim.tick()
    assert sim.calls("terminate_nodes") == terminations
    assert sim.calls("create_nodes") == 2 and len(sim.workers()) == 2

    sim.clock.advance(1)  # due: retried, and backed off twice as long
    sim.tick()
    assert sim.calls("terminate_nodes") == terminations + 1
    assert sim.reconciler.status_document().terminating[stuck].attempts == 2
    assert sim.reconciler.status_document().terminating[stuck].next_at == sim.clock.now + 10

    sim.provider.faults.unterminatable_ids.clear()
    sim.clock.advance(10)
    sim.tick()
    assert stuck not in {n.id for n in sim.workers()}
    sim.tick()
    assert sim.reconciler.status_document().terminating == {}


def test_a_type_failing_with_capacity_errors_is_backed_off_and_demand_moves(tmp_path: Path):
    sim = Sim(
        tmp_path,
        types={
            "head": {"resources": {"CPU": 0}},
            "small": {"resources": {"CPU": 1}},
            "big": {"resources": {"CPU": 4}},
        },
        provider={"capacity_errors": {"small": 99}},
    )
    sim.ray.set_demand([(CPU1, 1)])
    sim.tick()
    assert sim.workers() == [] and sim.calls("create_nodes") == 1
    backoff = sim.reconciler.status_document().backoff["small"]
    assert backoff.failures == 1 and backoff.until == sim.clock.now + 30
    sim.tick()
    assert [n.node_type for n in sim.workers()] == ["big"]
    assert sim.provider.faults.capacity_errors["small"] == 98  # small was not tried again
    sim.clock.advance(30)  # the backoff is over: small may launch again (and fails again)
    sim.ray.set_demand([(CPU1, 5)])
    sim.tick()
    assert sim.reconciler.status_document().backoff["small"].failures == 2
    assert sim.reconciler.status_document().backoff["small"].until == sim.clock.now + 60


def test_a_preempted_node_is_replaced_while_demand_remains(sim: Sim):
    sim.ray.set_demand([(CPU1, 1)])
    sim.tick()
    (first,) = sim.workers()
    sim.provider.preempt(first.id)  # its task is pending again
    sim.tick()
    (second,) = sim.workers()
    assert second.id != first.id and sim.calls("create_nodes") == 2


def test_a_preempted_booting_node_has_its_boot_cancelled(tmp_path: Path):
    sim = Sim(tmp_path, provider={"hung_boot_types": ["worker"]})
    sim.ray.set_demand([(CPU1, 1)])
    sim.reconciler.tick()
    (node,) = sim.workers()
    sim.provider.preempt(node.id)
    sim.ray.set_demand([])
    sim.tick()
    assert [e.what for e in sim.events("vanished")] == [node.id]
    assert sim.reconciler.status_document().booting == []


def test_a_boot_past_its_timeout_is_cancelled_and_no_longer_touches_the_node(tmp_path: Path):
    sim = Sim(tmp_path, provider={"hung_boot_types": ["worker"]})
    sim.ray.set_demand([(CPU1, 1)])
    sim.reconciler.tick()
    (node,) = sim.workers()
    sim.provider.faults.unterminatable_ids.add(node.id)  # so the record stays to be looked at
    sim.clock.advance(60)
    sim.reconciler.tick()
    assert sim.reconciler.status_document().booting == [node.id]  # exactly at the timeout
    sim.clock.advance(1)
    sim.tick()  # past it: cancelled, terminated (which fails here), type backed off
    assert sim.reconciler.status_document().booting == []
    assert node.id in sim.reconciler.status_document().terminating
    assert sim.reconciler.status_document().backoff["worker"].failures == 1
    sim.provider.faults.hung_boot_types.clear()  # the hung boot would now finish: it must not
    with sim.provider.state() as state:
        record = state.nodes[node.id]
        assert record["booted_at"] is None
        assert record["tags"][Tag.STATUS] == NodeStatus.UNINITIALIZED.value


def test_ray_reporting_a_node_dead_leads_to_its_termination(sim: Sim):
    sim.ray.set_demand([(CPU1, 1)])
    sim.tick()
    (node,) = sim.workers()
    sim.provider.kill_ray(node.id)
    sim.ray.set_demand([])
    sim.tick()
    assert sim.workers() == []
    assert [(e.what, e.reason) for e in sim.events("terminate")] == [(node.id, "its Ray is gone")]


def test_a_failed_listing_skips_the_tick_and_terminates_nothing(sim: Sim):
    sim.ray.set_demand([(CPU1, 2)])
    sim.tick()
    sim.ray.set_demand([])
    sim.clock.advance(61)
    sim.provider.faults.throttle_every = 1  # every call fails, the listing first
    with pytest.raises(TransientError):
        sim.reconciler.tick()
    assert sim.calls("terminate_nodes") == 0 and sim.calls("create_nodes") == 1
    sim.provider.faults.throttle_every = 0
    sim.tick()
    assert sim.workers() == [] and sim.calls("terminate_nodes") == 1  # one call for both


def test_a_restarted_monitor_resumes_launches_instead_of_repeating_them(tmp_path: Path):
    sim = Sim(tmp_path, provider={"hung_boot_types": ["worker"]})
    sim.ray.set_demand([(CPU1, 2)])
    sim.reconciler.tick()  # launched, boots hang: then the monitor is killed
    sim.reconciler.close()
    launched = sim.workers()
    requests = {n.tags[Tag.LAUNCH_REQUEST] for n in launched}
    assert len(launched) == 2 and len(requests) == 1
    sim.provider.faults.hung_boot_types.clear()
    again = sim.new_reconciler()
    sim.tick(again)
    assert sim.calls("create_nodes") == 1 and {n.id for n in sim.workers()} == {
        n.id for n in launched
    }
    assert len([n for n in sim.ray.snapshot("").nodes if n.alive]) == 3
    sim.ray.set_demand([(CPU1, 3)])
    sim.tick(again)
    later = {n.tags[Tag.LAUNCH_REQUEST] for n in sim.workers()} - requests
    assert len(later) == 1  # a new launch has a request id of its own


def test_a_failed_boot_terminates_the_node_and_backs_the_type_off(tmp_path: Path):
    sim = Sim(tmp_path, provider={"failed_boot_types": ["worker"]})
    sim.ray.set_demand([(CPU1, 1)])
    sim.tick()
    (node,) = sim.workers()
    sim.tick()
    assert sim.workers() == []
    assert sim.reconciler.status_document().backoff["worker"].failures == 1
    assert any(e.what == node.id and "fake: setup failed" in e.reason for e in sim.events("failed"))
    sim.tick()  # backed off: no new launch although the demand is still there
    assert sim.calls("create_nodes") == 1


def test_a_node_that_became_busy_is_kept_when_ray_refuses_to_drain_it(sim: Sim):
    sim.ray.set_demand([(CPU1, 1)])
    sim.tick()
    (node,) = sim.workers()
    sim.ray.set_demand([])
    sim.clock.advance(61)
    idle_view = sim.ray.snapshot("")
    sim.ray.set_used(node.id, CPU1)  # a task landed after Ray reported the node idle
    sim.reconciler.tick(snapshot=idle_view)
    assert [n.id for n in sim.workers()] == [node.id]
    assert [e.reason for e in sim.events("kept")] == ["drain refused: the node is busy"]


def test_a_second_monitor_on_the_same_cluster_does_not_act(sim: Sim, tmp_path: Path):
    def monitor(reconciler: Reconciler, name: str) -> Monitor:
        return Monitor(
            reconciler,
            snapshot=sim.ray.snapshot,
            lease_path=tmp_path / "lease",
            status_path=tmp_path / f"{name}.json",
            tick_s=0,
        )

    first, second = monitor(sim.reconciler, "first"), monitor(sim.new_reconciler(), "second")
    sim.ray.set_demand([(CPU1, 1)])
    assert first.step() is True
    calls = dict(sim.provider.calls)
    assert second.step() is False
    assert dict(sim.provider.calls) == calls
    assert not (tmp_path / "second.json").exists()  # the status is the active one's
    assert (tmp_path / "first.json").exists()
    first.close()
    assert second.step() is True  # the lease is free again
    second.close()


def test_the_monitor_ticks_at_once_when_demand_changes(sim: Sim, tmp_path: Path):
    monitor = Monitor(
        sim.reconciler,
        snapshot=sim.ray.snapshot,
        lease_path=tmp_path / "lease",
        status_path=tmp_path / "status.json",
        tick_s=3600,
    )
    assert monitor.step() is True  # the first tick
    assert monitor.step() is False  # nothing changed, next tick in an hour
    sim.ray.set_demand([(CPU1, 1)])
    assert monitor.step() is True
    assert sim.calls("create_nodes") == 1
    monitor.close()


@pytest.mark.parametrize(
    ("poll_cost_s", "wait_s"),
    [
        (0.0, 0.05),  # a cheap poll: every 50 ms
        (0.0125, 0.05),  # 4 x 12.5 ms = 50 ms: the floor still
        (0.03, 0.12),  # a slow GCS: four times as long as the poll took
    ],
)
def test_the_monitor_polls_less_often_when_a_poll_is_slow(
    sim: Sim, tmp_path: Path, poll_cost_s: float, wait_s: float
):
    now = [0.0]

    def slow_snapshot(gcs: str):
        now[0] += poll_cost_s
        return sim.ray.snapshot(gcs)

    monitor = Monitor(
        sim.reconciler,
        snapshot=slow_snapshot,
        lease_path=tmp_path / "lease",
        status_path=tmp_path / "status.json",
        tick_s=3600,
        poll_s=0.05,
        clock=lambda: now[0],
    )
    assert monitor.step() is True  # the first tick: no poll before it
    assert monitor.poll_s == 0.05
    assert monitor.step() is False  # a poll: nothing changed
    assert monitor.poll_s == pytest.approx(wait_s)
    monitor.close()


def test_the_lifecycle_allows_only_its_moves():
    check_move("n", Phase.LAUNCHED, Phase.BOOTING)
    check_move("n", Phase.TERMINATING, Phase.TERMINATING)
    for source, targets in TRANSITIONS.items():
        for target in set(Phase) - targets:
            with pytest.raises(TransitionError):
                check_move("n", source, target)


def test_the_autoscalers_history_survives_a_monitor_restart_and_stays_bounded(tmp_path: Path):
    sim = Sim(tmp_path, provider={"failed_boot_types": ["worker"]})
    status = tmp_path / "status.json"

    def monitor(reconciler: Reconciler) -> Monitor:
        return Monitor(
            reconciler,
            snapshot=sim.ray.snapshot,
            lease_path=tmp_path / "lease",
            status_path=status,
            tick_s=0,
        )

    first = monitor(sim.reconciler)
    sim.ray.set_demand([(CPU1, 1)])
    first.step()  # launches; the boot fails
    sim.reconciler.wait_for_boots()
    first.step()  # terminates the failed node
    first.close()
    before = AutoscalerStatus.model_validate_json(status.read_bytes())
    assert [e.action for e in before.events] == ["launch", "terminate"]
    assert [e.action for e in before.failures] == ["failed"]

    # A new monitor (as `up` starts): the old events come first, then its own.
    sim.provider.faults.failed_boot_types.clear()
    sim.clock.advance(3600)  # past the backoff
    second = monitor(sim.new_reconciler())
    second.step()
    second.close()
    after = AutoscalerStatus.model_validate_json(status.read_bytes())
    assert after.events[:2] == before.events
    assert [e.action for e in after.events[2:]] == ["launch"]
    assert after.failures == before.failures

    # Bounded: of more than `history` events, the newest are kept, in order.
    limit = ReconcilerSettings().history
    old = [Event(at=i, action="launch", what=f"w{i}", reason="r") for i in range(limit + 5)]
    status.write_text(AutoscalerStatus(updated_at=0, events=old).model_dump_json())
    third = monitor(sim.new_reconciler())
    third.step()
    third.close()
    kept = AutoscalerStatus.model_validate_json(status.read_bytes()).events
    assert kept == old[5:]
