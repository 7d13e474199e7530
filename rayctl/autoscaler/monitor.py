"""The head-node daemon: one reconciler tick about every second, a status document after
each, JSON log lines on stdout. `up` starts it (as the detached process "monitor" on the
head) and `down` stops it first."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pydantic
from filelock import FileLock, Timeout

from rayctl.autoscaler.autostop import Activity, IdleClock
from rayctl.autoscaler.boots import bootstrap_worker
from rayctl.autoscaler.reconciler import Reconciler, SnapshotFn
from rayctl.autoscaler.status import AutoscalerStatus, AutostopStatus
from rayctl.config.loader import LoadedConfig
from rayctl.config.schema import AutostopSettings
from rayctl.paths import rayctl_home, write_atomic
from rayctl.providers.base import simulated_ray
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime import head_paths
from rayctl.runtime.ray_adapter import (
    ClusterSnapshot,
    RayActivity,
    RayUnreachable,
    cluster_snapshot,
    drain_idle_node,
    ray_activity,
)
from rayctl.runtime.ray_auth import ClusterAuth

log = logging.getLogger(__name__)

TICK_S = float(os.environ.get("RAYCTL_MONITOR_TICK_S", "1.0"))
POLL_S = float(os.environ.get("RAYCTL_MONITOR_POLL_S", "0.05"))
# Polling waits at least this many times as long as a poll took, so it never takes more than
# a fifth of the monitor's time (a large cluster's status takes tens of milliseconds).
POLL_SHARE = 4


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "cluster": os.environ.get("RAYCTL_CLUSTER", ""),
        }
        for key in ("node_id", "stage"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _write_status(path: Path, document: AutoscalerStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, document.model_dump_json(indent=1))


def _demand_key(snap: ClusterSnapshot) -> tuple:
    return (
        sorted((sorted(b.items()), c) for b, c in snap.demands),
        sorted((s, [sorted(b.items()) for b in bs]) for s, bs in snap.placement_groups),
        sorted((sorted(b.items()), c) for b, c in snap.constraints),
    )


@dataclass
class Autostop:
    """The monitor's autostop: the idle clock it feeds each tick, and `stop`, which stops or
    removes the cluster when the clock runs out (given by the layer that starts the monitor,
    as `down` is orchestration)."""

    settings: AutostopSettings
    clock: IdleClock
    activity: Callable[[str], RayActivity]  # gcs address -> Ray's jobs and drivers
    stop: Callable[[], None]
    stopped_at: float | None = None

    def observe(self, snapshot: ClusterSnapshot | None, gcs: str | None, error: str | None) -> None:
        if snapshot is None or gcs is None:
            self.clock.observe(Activity(unknown=error or "no head"))
            return
        try:
            self.clock.observe(Activity.of(snapshot, self.activity(gcs)))
        except RayUnreachable as exc:
            self.clock.observe(Activity(unknown=str(exc).splitlines()[0]))

    def status(self) -> AutostopStatus:
        return AutostopStatus(
            idle_minutes=self.settings.idle_minutes,
            down=self.settings.down,
            idle_s=self.clock.idle_s(),
            left_s=self.clock.left_s(),
            busy=self.clock.busy,
            stopped_at=self.stopped_at,
        )


class Monitor:
    """The loop around a reconciler. It acts only while it holds the cluster's monitor lease
    (a file lock on the head): a second monitor stands by and changes nothing. It ticks every
    TICK_S, and at once when Ray's pending demand changes, which it polls every POLL_S (one
    GCS call; less often when a call takes long), so new work is seen within a fraction of a
    second.

    The status document on the head is also the autoscaler's history: the last events and
    failures (ReconcilerSettings.history of each), which a monitor taking the lease loads,
    so they survive `up` and restarts."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        snapshot: SnapshotFn,
        lease_path: Path,
        status_path: Path,
        tick_s: float = TICK_S,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
        autostop: Autostop | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.autostop = autostop
        self.finished = False  # autostop stopped the cluster: the monitor's work is done
        self._snapshot = snapshot
        self._lease = FileLock(lease_path)
        self._status_path = status_path
        self._tick_s = tick_s
        self._poll_s = poll_s
        self._poll_took = 0.0
        self._clock = clock
        self._last_tick = float("-inf")
        self._demand: tuple | None = None
        self.error: str | None = None
        self._standing_by = False

    def _hold_lease(self) -> bool:
        """Whether this monitor holds the lease, taking it if it is free."""
        if not self._lease.is_locked:
            try:
                self._lease.acquire(timeout=0)
            except Timeout:
                return False
            self._load_history()
        return True

    def _load_history(self) -> None:
        """The events of the monitor that held the lease before, from its status document."""
        try:
            previous = AutoscalerStatus.model_validate_json(self._status_path.read_bytes())
        except (OSError, pydantic.ValidationError):  # none yet, or another rayctl version's
            return
        self.reconciler.restore_history(previous.events, previous.failures)

    def step(self) -> bool:
        """Tick if one is due (time, or changed demand). Returns whether it ticked."""
        if not self._hold_lease():
            if not self._standing_by:  # the status file is the active monitor's to write
                log.warning("another monitor holds %s; standing by", self._lease.lock_file)
                self._standing_by = True
            return False
        self._standing_by = False
        snap = None
        due = self._clock() - self._last_tick >= self._tick_s
        gcs = self.reconciler.gcs_address
        if not due and gcs is not None:
            started = self._clock()
            try:
                snap = self._snapshot(gcs)
            except RayUnreachable:
                snap = None
            self._poll_took = self._clock() - started
            due = snap is not None and _demand_key(snap) != self._demand
        if not due:
            return False
        self._last_tick = self._clock()
        try:
            self.reconciler.tick(snapshot=snap)
            seen = self.reconciler.last_snapshot
            self._demand = _demand_key(seen) if seen is not None else None
            self.error = None
        except RayUnreachable as exc:
            self.error = str(exc).splitlines()[0]
            log.warning(self.error)
        except Exception as exc:  # keep the loop alive; the status says what broke
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("tick failed")
        if self.autostop is not None and self._autostop(self.autostop):
            return True
        self._write()
        return True

    def _autostop(self, autostop: Autostop) -> bool:
        """Feed the idle clock; stop the cluster when it ran out. Returns whether it is gone
        (nothing more to write: with down, the status document's directory went with it)."""
        seen = self.reconciler.last_snapshot if self.error is None else None
        autostop.observe(seen, self.reconciler.gcs_address, self.error)
        if not autostop.clock.due():
            return False
        log.info("idle for %.0f s: autostop", autostop.clock.idle_s() or 0.0)
        try:
            autostop.stop()
        except Exception as exc:  # tried again next tick; the status says what broke
            self.error = f"autostop failed: {type(exc).__name__}: {exc}"
            log.exception("autostop failed")
            return False
        self.finished = True
        if autostop.settings.down:
            return True
        autostop.stopped_at = time.time()
        self._write()
        return True

    @property
    def poll_s(self) -> float:
        """How long to wait before the next step."""
        return max(self._poll_s, POLL_SHARE * self._poll_took)

    def _write(self) -> None:
        document = self.reconciler.status_document()
        document.pid, document.error = os.getpid(), self.error
        if self.autostop is not None:
            document.autostop = self.autostop.status()
        _write_status(self._status_path, document)

    def close(self) -> None:
        self.reconciler.close()
        if self._lease.is_locked:
            self._lease.release()


AutostopFn = Callable[[LoadedConfig], None]


def run_monitor(config_path: Path, *, autostop: AutostopFn | None = None) -> int:
    """`autostop(loaded)` stops or removes the cluster when the config's rayctl.autostop
    says so and it has stayed idle that long."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    loaded = load_config(config_path)
    config = loaded.config
    provider = make_provider(config, home=rayctl_home())
    simulated = simulated_ray(provider)
    activity: Callable[[str], RayActivity] | None = None  # simulated clusters never autostop
    if simulated is not None:  # the fake provider: Ray's side is simulated too
        snapshot, drain, boot = simulated.snapshot, simulated.drain, simulated.boot
    else:
        # The token is read from where `up` put it on the head; a missing one fails each
        # call with Ray's own message (in the status's error), not the loop.
        auth = ClusterAuth.on_node(config)
        snapshot = partial(cluster_snapshot, token_file=auth.token_file)
        drain = partial(drain_idle_node, token_file=auth.token_file)
        activity = partial(ray_activity, token_file=auth.token_file)
        boot = bootstrap_worker(config, provider, auth)
    reconciler = Reconciler(config, provider, snapshot=snapshot, drain=drain, boot=boot)
    settings = config.rayctl.autostop
    monitor = Monitor(
        reconciler,
        snapshot=snapshot,
        lease_path=Path(os.path.expanduser(head_paths.MONITOR_LEASE)),
        status_path=Path(os.path.expanduser(head_paths.MONITOR_STATUS)),
        autostop=Autostop(
            settings, IdleClock(settings.idle_minutes * 60), activity, partial(autostop, loaded)
        )
        if settings is not None and autostop is not None and activity is not None
        else None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("monitor started for cluster %s (pid %d)", config.cluster_name, os.getpid())
    try:
        while not stop.is_set() and not monitor.finished:
            monitor.step()
            stop.wait(monitor.poll_s)
    finally:
        monitor.close()
        log.info("monitor stopped")
    return 0
