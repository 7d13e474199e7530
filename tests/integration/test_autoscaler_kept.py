"""A failed `up` of a running cluster leaves its autoscaler running (the one that ran before,
with its own config) and its history intact; `status` lists every node type with its limits
and says when the autoscaler is off, and how to start it (after `down --workers-only`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

# Needs one CPU more than the cluster has: bounded, so a cluster that cannot grow fails the job.
GROW = """\
import ray
ray.init(log_to_driver=False)

@ray.remote(num_cpus=1)
class Hold:
    def node(self):
        return ray.get_runtime_context().get_node_id()

cpus = int(ray.cluster_resources()["CPU"])
holds = [Hold.remote() for _ in range(cpus + 1)]
print("nodes:", len(set(ray.get([h.node.remote() for h in holds], timeout=120))))
"""


def launches(status: dict) -> list[dict]:
    return [e for e in (status["autoscaler"] or {}).get("events", []) if e["action"] == "launch"]


def written_by_another_monitor(cluster, cli, before: dict) -> dict:
    """The status once a monitor other than the one of `before` has written it."""
    pid = before["autoscaler"]["pid"]
    return wait_for(
        lambda: (s := cluster.status(cli))["autoscaler"]["pid"] != pid and s,
        30,
        "the restarted monitor's status",
    )


def test_a_failed_up_keeps_the_autoscaler_and_its_history(make_cluster, cli, tmp_path: Path):
    cluster = make_cluster(
        "kept",
        max_workers=4,
        idle_timeout_minutes=10,  # nothing goes idle during the test
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            "ray.worker.cpu": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 4},
            "spare": {"resources": {"CPU": 1, "spare": 1}, "min_workers": 0, "max_workers": 2},
        },
    )
    grow = tmp_path / "grow.py"
    grow.write_text(GROW)
    assert cli("up", cluster.config, "--yes").code == 0

    # Every node type, also one without nodes, with its limits: table and --json alike.
    status = cluster.status(cli)
    types = {t["node_type"]: t for t in status["node_types"]}
    assert list(types) == ["ray.head.default", "ray.worker.cpu", "spare"]
    assert types["spare"] == {
        "node_type": "spare",
        "head": False,
        "workers": 0,
        "min_workers": 0,
        "max_workers": 2,
    }
    assert types["ray.worker.cpu"]["workers"] == 1 and types["ray.head.default"]["head"]
    assert status["max_workers"] == 4
    table = cli("status", cluster.config).out.splitlines()
    assert ["spare", "0", "0", "2"] in [line.split() for line in table]
    assert "autoscaler: running" in table

    # The autoscaler adds a node for the job: an event from before the next `up`.
    job = cli("submit", cluster.config, grow)
    assert job.code == 0, job.text
    grown = cluster.status(cli)
    (first,) = launches(grown)

    # `up` with a setup typo fails; the autoscaler that ran before runs again.
    good = cluster.config.read_text()
    raw = yaml.safe_load(good)
    raw["setup_commands"] = ["ech0 typo"]
    cluster.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    failed = cli("up", cluster.config, "--yes")
    assert failed.code == 1, failed.text
    assert "ech0" in failed.err and "autoscaler: restored" in failed.err
    after = written_by_another_monitor(cluster, cli, grown)
    assert after["monitor_running"] and after["autoscaler_hint"] is None
    assert first in launches(after)

    # ... and still scales, with its own config (the typo would fail every new worker).
    job = cli("submit", cluster.config, grow)
    assert job.code == 0, job.text
    regrown = cluster.status(cli)
    assert len(launches(regrown)) == 2

    # Ctrl-C while `up` sets the nodes up: the autoscaler is restored as well.
    raw["setup_commands"] = ["sleep 4"]
    cluster.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    rayctl = Path(sys.executable).parent / "rayctl"
    up = subprocess.Popen(
        [rayctl, "up", cluster.config, "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(
        lambda: any(n["stage"] == "setting-up" for n in cluster.status(cli)["nodes"]),
        60,
        "`up` to set up the nodes",
    )
    up.send_signal(signal.SIGINT)
    _, interrupted = up.communicate(timeout=60)
    assert up.returncode == 130, interrupted
    assert b"Aborted." in interrupted and b"autoscaler: restored" in interrupted
    regrown = written_by_another_monitor(cluster, cli, regrown)
    assert regrown["monitor_running"] and len(launches(regrown)) == 2

    # A good `up` restarts the monitor: the history is still there.
    cluster.config.write_text(good)
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0, again.text
    assert launches(written_by_another_monitor(cluster, cli, regrown)) == launches(regrown)

    # Without workers and without its autoscaler, the cluster says so, and how to start it.
    down = cli("down", cluster.config, "--workers-only", "--yes")
    assert down.code == 0, down.text
    hint = f"`rayctl up {cluster.config} -n {cluster.name}` starts it again"
    assert "autoscaler: off" in down.err and hint in down.err
    off = cluster.status(cli)
    assert not off["monitor_running"]
    assert off["autoscaler_hint"].startswith("autoscaler: off") and hint in off["autoscaler_hint"]
    shown = cli("status", cluster.config).out
    assert off["autoscaler_hint"] in shown
    assert (
        json.loads(cli("down", cluster.config, "--workers-only", "--yes", "--json").out)[
            "autoscaler_hint"
        ]
        == off["autoscaler_hint"]
    )
