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
from rayctl.autoscaler.status import AutoscalerStatus
from rayctl.paths import rayctl_home
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime import head_paths
from rayctl.runtime.ray_adapter import RayUnreachable, cluster_snapshot, drain_idle_node

log = logging.getLogger(__name__)

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


def _write_status(path: Path, document: AutoscalerStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(document.model_dump_json(indent=1))
    os.replace(tmp, path)


def run_monitor(config_path: Path) -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = load_config(config_path).config
    provider = make_provider(config, home=rayctl_home())
    reconciler = Reconciler(config, provider, snapshot=cluster_snapshot, drain=drain_idle_node)
    status_path = Path(os.path.expanduser(head_paths.MONITOR_STATUS))
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
            document = reconciler.status_document()
            document.pid, document.error = os.getpid(), error
            _write_status(status_path, document)
            stop.wait(max(0.0, TICK_S - (time.monotonic() - started)))
    finally:
        reconciler.close()
        log.info("monitor stopped")
    return 0
