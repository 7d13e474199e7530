"""Autostop's idle decision: a cluster is idle while no Ray job or driver runs, nothing waits
for resources and no node is busy; any activity resets the clock, and the cluster stops once
it has been idle for the whole timeout. Pure: the monitor feeds it what it saw, with a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rayctl.runtime.ray_adapter import ClusterSnapshot, RayActivity


@dataclass(frozen=True)
class Activity:
    """What keeps a cluster from being idle; `reason` says which (None: idle)."""

    jobs: tuple[str, ...] = ()  # Ray Jobs not finished
    drivers: int = 0
    pending: int = 0  # task/actor shapes, placement groups and request_resources waiting
    busy_nodes: tuple[str, ...] = ()  # nodes Ray reports in use
    unknown: str | None = None  # Ray did not answer: not counted as idle

    @classmethod
    def of(cls, snapshot: ClusterSnapshot, ray: RayActivity) -> Activity:
        return cls(
            jobs=tuple(ray.jobs),
            drivers=ray.drivers,
            pending=len(snapshot.demands)
            + len(snapshot.placement_groups)
            + len(snapshot.constraints),
            busy_nodes=tuple(n.instance_id for n in snapshot.nodes if n.status == "RUNNING"),
        )

    @property
    def reason(self) -> str | None:
        if self.unknown is not None:
            return f"Ray's state is unknown ({self.unknown})"
        if self.jobs:
            return f"job(s) running: {', '.join(self.jobs)}"
        if self.drivers:
            return f"{self.drivers} driver(s) connected"
        if self.pending:
            return "work waits for resources"
        if self.busy_nodes:
            return f"node(s) busy: {', '.join(self.busy_nodes)}"
        return None


class IdleClock:
    """How long the cluster has been idle, from what the monitor observes each tick."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._idle_since: float | None = None
        self.busy: str | None = None  # why it is not idle, as of the last observation

    def observe(self, activity: Activity) -> None:
        self.busy = activity.reason
        if self.busy is not None:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = self._clock()

    def idle_s(self) -> float | None:
        """How long it has been idle (None: it is not)."""
        return None if self._idle_since is None else self._clock() - self._idle_since

    def left_s(self) -> float | None:
        """Time left before it stops (None: not idle, so not counting down)."""
        idle = self.idle_s()
        return None if idle is None else max(0.0, self.timeout_s - idle)

    def due(self) -> bool:
        idle = self.idle_s()
        return idle is not None and idle >= self.timeout_s
