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
from pathlib import Path

from rayctl.autoscaler.reconciler import Reconciler
from rayctl.config.loader import load_config
from rayctl.paths import rayctl_home
from rayctl.providers import make_provider
from rayctl.runtime.ray_adapter import RayUnreachable, cluster_snapshot, drain_idle_node

log = logging.getLogger(__name__)

MONITOR_SLOT = "monitor"
# On the head, relative to its home: the config the monitor runs and what it reports.
CONFIG_PATH = "~/.rayctl/monitor/cluster.yaml"
STATUS_PATH = "~/.rayctl/monitor/status.json"
TICK_S = float(os.environ.get("RAYCTL_MONITOR_TICK_S", "1.0"))


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


def _write_status(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str))
    os.replace(tmp, path)


def run_monitor(config_path: Path) -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = load_config(config_path).config
    provider = make_provider(config, home=rayctl_home())
    reconciler = Reconciler(config, provider, snapshot=cluster_snapshot, drain=drain_idle_node)
    status_path = Path(os.path.expanduser(STATUS_PATH))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("monitor started for cluster %s (pid %d)", config.cluster_name, os.getpid())
    error = None
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                reconciler.tick()
                error = None
            except RayUnreachable as exc:
                error = str(exc).splitlines()[0]
                log.warning(error)
            except Exception as exc:  # keep the loop alive; the status says what broke
                error = f"{type(exc).__name__}: {exc}"
                log.exception("tick failed")
            _write_status(
                status_path, {**reconciler.status_document(), "pid": os.getpid(), "error": error}
            )
            stop.wait(max(0.0, TICK_S - (time.monotonic() - started)))
    finally:
        reconciler.close()
        log.info("monitor stopped")
    return 0
