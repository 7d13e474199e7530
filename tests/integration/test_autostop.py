"""Autostop on real local clusters, through the installed `rayctl`: with --down, a running
Ray job keeps the cluster past its timeout and, once the job ends and the timeout passes, the
head's monitor removes the cluster (no Ray process, no state left); without, the monitor stops
every node's Ray, keeps the nodes, and a later `up` starts them again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rayctl.paths import cluster_dir
from tests.conftest import cluster_pids, kill_leftovers, unique_name, wait_for, write_config

pytestmark = pytest.mark.integration

RAYCTL = Path(sys.executable).parent / "rayctl"
# A job that never calls ray.init (only Ray Jobs knows it runs) and ends when argv[1] exists.
WAIT_FOR_FILE = """\
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.2)
print("released")
"""


@dataclass(frozen=True)
class Cluster:
    name: str
    config: Path
    home: Path
    scratch: Path

    def rayctl(self, *args: object, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RAYCTL_HOME": str(self.home)}
        env.pop("RAYCTL_DEBUG", None)
        return subprocess.run(
            [RAYCTL, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def status(self) -> dict:
        result = self.rayctl("status", self.config, "--json", timeout_s=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    name = unique_name("autostop")
    # One worker besides the head: autostop stops or removes the workers too.
    config = write_config(
        tmp_path / f"{name}.yaml",
        name,
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            "ray.worker.cpu": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 1},
        },
    )
    made = Cluster(name, config, tmp_path / "home", tmp_path)
    try:
        yield made
    finally:
        made.rayctl("down", config, "--yes")
        assert kill_leftovers(name) == [], "processes outlived autostop and `rayctl down`"


def test_a_job_keeps_the_cluster_then_autostop_down_removes_everything(cluster: Cluster):
    timeout_s = 30
    up = cluster.rayctl("up", cluster.config, "--yes", "--autostop", timeout_s / 60, "--down")
    assert up.returncode == 0, up.stderr
    up_at = time.monotonic()
    release = cluster.scratch / "release"
    (cluster.scratch / "wait.py").write_text(WAIT_FOR_FILE)
    submitted = cluster.rayctl(
        "submit", cluster.config, "--detach", cluster.scratch / "wait.py", release
    )
    assert submitted.returncode == 0, submitted.stderr
    # Past the timeout (and a few of the monitor's ticks) the job still holds the cluster.
    time.sleep(max(0.0, up_at + timeout_s + 5 - time.monotonic()))
    status = cluster.status()
    assert status["autostop"]["down"] is True
    assert status["autostop"]["idle_minutes"] == 0.5
    assert status["autostop"]["busy"].startswith("job(s) running"), status["autostop"]
    assert status["autostop"]["left_s"] is None
    assert len(status["nodes"]) == 2 and cluster_pids(cluster.name)

    release.touch()  # the job ends; the countdown starts
    status = wait_for(
        lambda: (s := cluster.status())["autostop"]["left_s"] is not None and s,
        timeout_s=60,
        what="the idle countdown",
    )
    assert 0 < status["autostop"]["left_s"] <= timeout_s
    wait_for(
        lambda: not cluster_pids(cluster.name),
        timeout_s=timeout_s + 120,
        what="the cluster removing itself",
    )
    assert not cluster_dir(cluster.home, cluster.name).exists()
    gone = cluster.rayctl("status", cluster.config)
    assert gone.returncode != 0 and "has no nodes" in gone.stderr, gone.stderr


def test_autostop_stops_the_nodes_and_up_resumes_them(cluster: Cluster):
    plain = cluster.config.read_text()
    cluster.config.write_text(plain + "rayctl:\n  autostop: {idle_minutes: 0.1}\n")
    up = cluster.rayctl("up", cluster.config, "--yes")
    assert up.returncode == 0, up.stderr
    wait_for(lambda: not cluster_pids(cluster.name), timeout_s=120, what="autostop")
    status = cluster.status()
    assert [n["state"] for n in status["nodes"]] == ["stopped", "stopped"]
    assert status["autostop"]["stopped_at"] is not None
    assert status["autostop"]["down"] is False

    cluster.config.write_text(plain)  # resumed without autostop: it stays up
    again = cluster.rayctl("up", cluster.config, "--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert sorted(json.loads(again.stdout)["outcomes"].values()) == ["started", "started"]
    status = cluster.status()
    assert [n["state"] for n in status["nodes"]] == ["running", "running"]
    assert status["autostop"] is None or status["autostop"]["stopped_at"] is None
