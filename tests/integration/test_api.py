"""The Python API (rayctl.Cluster) on real local clusters: the whole lifecycle, a driver of
this machine reaching the cluster through `address` with the cluster's token, and a `with`
block that raises (or a cluster that fails to come up) leaving nothing behind: no Ray process
of the cluster, no state, no loopback lease."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rayctl
from rayctl.api import Cluster, UpFailed
from rayctl.errors import ClusterNotFound
from rayctl.providers.base import NodeKind
from rayctl.providers.local.loopback import LEASE_DIR
from tests.conftest import cluster_pids, wait_for

pytestmark = pytest.mark.integration

HEAD_ONLY = {"ray.head.default": {"resources": {"CPU": 1}}}
# Prints where its tasks ran and exits with argv[2]; argv[1] tasks.
JOB = """\
import socket, sys, ray
ray.init()
where = ray.remote(lambda: socket.gethostname())
hosts = ray.get([where.remote() for _ in range(int(sys.argv[1]))])
print("ran", len(hosts), "tasks")
sys.exit(int(sys.argv[2]))
"""
# A driver of this machine: connects to argv[1] and prints the cluster's CPUs.
DRIVER = (
    "import sys, ray; ray.init(address=sys.argv[1]); print('cpus', ray.cluster_resources()['CPU'])"
)


def leased(ips: set[str]) -> set[str]:
    return ips & {p.name for p in LEASE_DIR.iterdir()} if LEASE_DIR.exists() else set()


def assert_nothing_left(name: str, ips: set[str], rayctl_home: Path) -> None:
    wait_for(lambda: not cluster_pids(name), 20, "the cluster's processes to end")
    assert not (rayctl_home / "clusters" / name).exists()
    assert not leased(ips)


def driver(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, address],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_lifecycle_through_the_api(make_cluster, rayctl_home: Path, tmp_path: Path):
    # A head and one worker, no more: the autoscaler neither adds nor removes one meanwhile.
    made = make_cluster("api", max_workers=1)
    cluster = rayctl.Cluster.from_config(made.config)
    assert isinstance(cluster, Cluster) and cluster.name == made.name

    report = cluster.up()
    assert report.failed == [] and len(report.outcomes) == 2
    status = cluster.status()
    assert sorted(n.kind for n in status.nodes) == ["head", "worker"]
    assert all(n.stage == "ready" for n in status.nodes)
    assert cluster.address == status.gcs_address == report.head.gcs_address
    assert cluster.dashboard_url == status.dashboard_url

    script = tmp_path / "job.py"
    script.write_text(JOB)
    job = cluster.submit(script, "3", "0")
    assert (job.status, job.exit_code, job.succeeded) == ("SUCCEEDED", 0, True)
    assert "ran 3 tasks\n" in job.output
    assert "ran 3 tasks" in job.logs()
    # An entrypoint as Ray Jobs spells it; the job's own exit code comes back.
    failed = cluster.submit(f"python {script} 2 5")
    assert (failed.exit_code, failed.succeeded) == (5, False) and "ran 2 tasks" in failed.output
    lines: list[str] = []
    detached = cluster.submit(script, "1", "0", wait=False)
    assert detached.status == "PENDING" and detached.exit_code is None
    assert cluster.logs(detached.job_id, follow=True, output=lines.append) == ""
    assert "ran 1 tasks" in lines
    assert cluster.job(detached.job_id).exit_code == 0
    assert [j.job_id for j in cluster.jobs()] == [job.job_id, failed.job_id, detached.job_id]

    # A driver here reaches the cluster at `address`, with the token and only with it.
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    connected = driver(cluster.address, base | cluster.ray_env())
    assert connected.returncode == 0, connected.stderr
    assert "cpus 2.0" in connected.stdout
    refused = driver(cluster.address, base | {"RAY_AUTH_MODE": "token"})
    assert refused.returncode != 0 and "cpus" not in refused.stdout

    nodes = cluster.nodes()
    assert sorted(n.kind for n in nodes) == [NodeKind.HEAD, NodeKind.WORKER]
    removed = cluster.down()
    assert {n.id for n in removed.removed} == {n.id for n in nodes}
    assert removed.may_remain == []
    ips = {n.internal_ip for n in nodes}
    assert_nothing_left(made.name, ips, rayctl_home)
    with pytest.raises(ClusterNotFound):
        cluster.status()
    assert cluster.down().removed == []  # nothing left to do, and no error


def test_an_exception_in_the_with_block_leaves_nothing_behind(make_cluster, rayctl_home: Path):
    made = make_cluster("apiexc", available_node_types=HEAD_ONLY)
    seen: dict[str, object] = {}
    with pytest.raises(ZeroDivisionError), Cluster.from_config(made.config) as cluster:
        seen["ips"] = {n.internal_ip for n in cluster.nodes()}
        seen["pids"] = cluster_pids(made.name)
        1 / 0  # noqa: B018  # the block fails: the exception propagates, the cluster goes
    assert seen["pids"] and len(seen["ips"]) == 1  # it was up inside the block
    assert_nothing_left(made.name, seen["ips"], rayctl_home)


def test_a_cluster_that_fails_to_come_up_is_removed_on_entry(make_cluster, rayctl_home: Path):
    made = make_cluster("apifail", available_node_types=HEAD_ONLY, setup_commands=["exit 3"])
    entered = False
    with pytest.raises(UpFailed) as failed, Cluster.from_config(made.config):
        entered = True
    assert not entered
    [failure] = failed.value.report.failed
    assert failure.stage == "setting-up"
    assert_nothing_left(made.name, {failed.value.report.head.internal_ip}, rayctl_home)
