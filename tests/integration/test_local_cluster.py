"""End to end on the embedded local provider, with real Ray processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rayctl.paths import ray_token_file
from rayctl.providers.local.loopback import LEASE_DIR
from rayctl.runtime.ray_adapter import list_ray_nodes
from tests.conftest import REPO, cluster_pids, wait_for

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "spread_tasks.py"


def ray_pid(rayctl_home: Path, cluster: str, node_id: str) -> int:
    node_home = rayctl_home / "clusters" / cluster / "nodes" / node_id
    return int((node_home / ".rayctl" / "procs" / node_id / "pid").read_text())


def test_up_submit_status_down(make_cluster, cli, rayctl_home, tmp_path):
    cluster = make_cluster("main")
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    status = cluster.status(cli)
    kinds = sorted(n["kind"] for n in status["nodes"])
    assert kinds == ["head", "worker"]
    assert all(n["stage"] == "ready" and n["state"] == "running" for n in status["nodes"])
    # Ray's own record of each node carries the provider's node id as its instance id.
    token = ray_token_file(rayctl_home, cluster.name)
    ray_ids = {
        r.instance_id
        for r in list_ray_nodes(status["gcs_address"], token_file=token)
        if r.status != "DEAD"
    }
    assert ray_ids == {n["id"] for n in status["nodes"]}
    ips = {n["ip"] for n in status["nodes"]}
    assert len(ips) == 2 and all(ip.startswith("127.0.") and ip != "127.0.0.1" for ip in ips)

    job = cli("submit", cluster.config, EXAMPLE, "--", "4", "1", "0")
    assert job.code == 0, job.text
    assert "4 tasks ran on 2 nodes" in job.out

    failing = tmp_path / "fails.py"
    failing.write_text("import ray\nray.init()\nprint('before')\n1 / 0\n")
    bad = cli("submit", cluster.config, failing)
    assert bad.code == 1
    assert "before" in bad.out and "Traceback" in bad.out and "ZeroDivisionError" in bad.out

    # The job may have made the autoscaler add workers; a second `up` adds or removes none.
    before = {n["id"] for n in cluster.status(cli)["nodes"]}
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0, again.text
    assert "nothing changed" in again.out
    assert {n["id"] for n in cluster.status(cli)["nodes"]} == before

    code = subprocess.run(
        [
            Path(sys.executable).parent / "rayctl",
            "exec",
            cluster.config,
            'echo "addr=$RAY_ADDRESS"; exit 3',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert code.returncode == 3
    assert f"addr={status['gcs_address']}" in code.stdout
    assert cli("get-head-ip", cluster.config).out.strip() == status["head_ip"]

    detached = cli("submit", "--detach", cluster.config, EXAMPLE, "2", "0.5", "0")
    assert detached.code == 0, detached.text
    job_id = detached.out.strip()
    followed = cli("logs", cluster.config, job_id, "--follow")
    assert followed.code == 0, followed.text
    assert "2 tasks ran on" in followed.out
    assert cli("logs", cluster.config, "job-20000101-000000-0000").code == 4  # well-formed, unknown

    pids = cluster_pids(cluster.name)
    assert len(pids) > 4  # head and worker with their raylets, GCS, dashboard, ...
    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    assert "nothing is left" in down.out
    assert cluster_pids(cluster.name) == []
    assert not (rayctl_home / "clusters" / cluster.name).exists()
    leased = {p.name for p in LEASE_DIR.iterdir()} if LEASE_DIR.exists() else set()
    assert not ips & leased
    second = cli("down", cluster.config, "--yes")
    assert second.code == 0 and "nothing to do" in second.out


def test_two_clusters_side_by_side(make_cluster, cli):
    first = make_cluster("a")
    second = make_cluster(
        "b",
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            "special": {"resources": {"CPU": 2, "widget": 3}, "min_workers": 1},
        },
    )
    assert cli("up", first.config, "--yes").code == 0
    result = cli("up", second.config, "--yes")
    assert result.code == 0, result.text
    a, b = first.status(cli), second.status(cli)
    assert a["gcs_address"] != b["gcs_address"]
    assert not {n["ip"] for n in a["nodes"]} & {n["ip"] for n in b["nodes"]}
    worker = next(n for n in b["nodes"] if n["kind"] == "worker")
    assert worker["resources"]["widget"] == 3.0 and worker["resources"]["CPU"] == 2.0

    first_pids = set(cluster_pids(first.name))
    assert cli("down", second.config, "--yes").code == 0
    assert cluster_pids(second.name) == []
    assert set(cluster_pids(first.name)) >= first_pids  # untouched
    assert all(n["ray"] != "DEAD" for n in first.status(cli)["nodes"])


def test_killed_worker_shows_in_status_and_is_replaced(make_cluster, cli, rayctl_home):
    cluster = make_cluster("kill")
    assert cli("up", cluster.config, "--yes").code == 0
    worker = next(n for n in cluster.status(cli)["nodes"] if n["kind"] == "worker")
    os.killpg(ray_pid(rayctl_home, cluster.name, worker["id"]), signal.SIGKILL)

    def reported():
        events = (cluster.status(cli)["autoscaler"] or {}).get("events", [])
        return [e for e in events if e["action"] == "terminate" and e["what"] == worker["id"]]

    assert "its Ray is gone" in wait_for(reported, 30, "the monitor to notice")[0]["reason"]

    def replaced():
        rows = [n for n in cluster.status(cli)["nodes"] if n["kind"] == "worker"]
        return rows if rows and all(r["ray"] in ("IDLE", "RUNNING") for r in rows) else None

    rows = wait_for(replaced, 60, "a new worker for min_workers")
    assert len(rows) == 1 and rows[0]["id"] != worker["id"]


def test_down_after_only_the_ray_leader_was_killed(make_cluster, cli, rayctl_home):
    cluster = make_cluster("leader")
    assert cli("up", cluster.config, "--yes").code == 0
    worker = next(n for n in cluster.status(cli)["nodes"] if n["kind"] == "worker")
    os.kill(ray_pid(rayctl_home, cluster.name, worker["id"]), signal.SIGKILL)
    # raylet and friends of that node are still alive, without their leader.
    assert cli("down", cluster.config, "--yes").code == 0
    assert cluster_pids(cluster.name) == []


def test_changed_setup_commands_rerun_setup_only(make_cluster, cli, rayctl_home):
    cluster = make_cluster("setup", setup_commands=["echo one >> ~/setup.log"])
    assert cli("up", cluster.config, "--yes").code == 0
    nodes = cluster.status(cli)["nodes"]
    pids = {n["id"]: ray_pid(rayctl_home, cluster.name, n["id"]) for n in nodes}

    text = cluster.config.read_text().replace("echo one", "echo two")
    cluster.config.write_text(text)
    result = cli("up", cluster.config, "--yes")
    assert result.code == 0, result.text
    assert "2 set up again" in result.out
    for node_id, pid in pids.items():
        assert ray_pid(rayctl_home, cluster.name, node_id) == pid  # Ray was not restarted
        log = rayctl_home / "clusters" / cluster.name / "nodes" / node_id / "setup.log"
        assert log.read_text() == "one\ntwo\n"


def test_failed_setup_command_marks_the_node_failed(make_cluster, cli):
    cluster = make_cluster("fail", worker_setup_commands=["echo about to fail", "exit 7"])
    result = cli("up", cluster.config, "--yes")
    assert result.code == 1
    assert "failed while setting-up" in result.err and "about to fail" in result.err
    assert "`exit 7` exited with 7" in result.err
    status = cluster.status(cli)
    rows = {n["kind"]: n for n in status["nodes"]}
    assert rows["head"]["stage"] == "ready"
    assert rows["worker"]["stage"] == "failed"
    assert "about to fail" in rows["worker"]["error"]
    # No autoscaler ran before, and this config's would launch workers that fail the same
    # way: it stays off, and both `up` and `status` say how to start it.
    hint = f"`rayctl up {cluster.config} -n {cluster.name}` starts it again"
    assert "autoscaler: off" in result.err and hint in result.err
    assert not status["monitor_running"] and hint in status["autoscaler_hint"]


def test_custom_start_commands_and_no_wait(make_cluster, cli):
    ray = Path(sys.executable).parent / "ray"
    cluster = make_cluster(
        "custom",
        worker_start_ray_commands=[
            "echo starting my way",
            f"exec {ray} start --block --address=$RAYCTL_GCS_ADDRESS --disable-usage-stats "
            """$RAYCTL_RAY_START_ARGS --resources='{"started_my_way": 1}'""",
        ],
    )
    result = cli("up", cluster.config, "--yes", "--no-wait")
    assert result.code == 0, result.text

    def worker():
        rows = [n for n in cluster.status(cli)["nodes"] if n["kind"] == "worker"]
        return rows[0] if rows and rows[0]["ray"] in ("IDLE", "RUNNING") else None

    row = wait_for(worker, 60, "the worker to join Ray after --no-wait")
    assert row["resources"]["started_my_way"] == 1.0


def test_attach_gives_a_shell_on_the_head(make_cluster, cli):
    cluster = make_cluster(
        "attach",
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
        },
    )
    assert cli("up", cluster.config, "--yes").code == 0
    gcs = cluster.status(cli)["gcs_address"]
    shell = subprocess.run(
        [Path(sys.executable).parent / "rayctl", "attach", cluster.config],
        input='echo "inside $RAY_ADDRESS $HOME"\nexit 5\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 5, shell.stderr
    assert f"inside {gcs} " in shell.stdout and "/nodes/head-" in shell.stdout


def test_up_after_the_head_died_restarts_the_workers_with_it(make_cluster, cli, rayctl_home):
    cluster = make_cluster("headdeath")
    assert cli("up", cluster.config, "--yes").code == 0
    head = next(n for n in cluster.status(cli)["nodes"] if n["kind"] == "head")
    os.killpg(ray_pid(rayctl_home, cluster.name, head["id"]), signal.SIGKILL)

    healed = cli("up", cluster.config, "--yes")
    assert healed.code == 0, healed.text
    assert "1 started, 1 restarted" in healed.out
    status = cluster.status(cli)
    token = ray_token_file(rayctl_home, cluster.name)
    alive = {
        r.instance_id
        for r in list_ray_nodes(status["gcs_address"], token_file=token)
        if r.status != "DEAD"
    }
    assert alive == {n["id"] for n in status["nodes"]}  # the worker joined the new head
