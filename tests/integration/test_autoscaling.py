"""The autoscaler end to end on the local provider, with real Ray: the monitor on the head
grows the cluster for demand and shrinks it when nodes stay idle."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from rayctl.paths import ray_token_file
from rayctl.runtime.ray_adapter import list_ray_nodes
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "spread_tasks.py"


def workers(status: dict) -> list[dict]:
    return [n for n in status["nodes"] if n["kind"] == "worker"]


def events(status: dict, action: str) -> list[dict]:
    return [e for e in (status["autoscaler"] or {}).get("events", []) if e["action"] == action]


def proc_markers(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in pairs if k.startswith("RAYCTL_")}


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("import ray, time\nray.init(log_to_driver=False)\n" + body)
    return path


def test_scales_up_for_tasks_and_back_down_when_idle(make_cluster, cli):
    cluster = make_cluster("scale", idle_timeout_minutes=0.2)
    assert cli("up", cluster.config, "--yes").code == 0
    # The demo's job: it goes on until the workers the autoscaler adds have done work too.
    job = cli("submit", cluster.config, EXAMPLE)
    assert job.code == 0, job.text
    summary = re.search(r"tasks ran on (\d+) nodes \((\d+) joined while the job ran\)", job.out)
    assert summary, job.out
    ran_on, joined = map(int, summary.groups())
    assert joined >= 2 and ran_on == 2 + joined  # head + min worker + the added workers
    added = [line for line in job.out.splitlines() if line.endswith("(joined while the job ran)")]
    assert len(added) == joined and all(int(a.split("): ")[1].split()[0]) >= 2 for a in added)

    status = cluster.status(cli)
    assert 1 < len(workers(status)) <= 4  # max_workers 4
    launched = events(status, "launch")
    assert launched and "pending {CPU: 1}" in launched[0]["reason"]

    def shrunk():
        current = cluster.status(cli)
        return current if len(workers(current)) == 1 else None

    final = wait_for(shrunk, 120, "idle workers to be removed")
    assert any("idle" in e["reason"] for e in events(final, "terminate"))
    assert final["monitor_running"]


def test_custom_resource_infeasible_gpu_spread_group_and_request_resources(
    make_cluster, cli, tmp_path
):
    cluster = make_cluster(
        "shapes",
        max_workers=5,
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            "cpu": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 4},
            "widget": {"resources": {"CPU": 1, "widget": 1}, "min_workers": 0, "max_workers": 1},
        },
    )
    assert cli("up", cluster.config, "--yes").code == 0

    actor = script(
        tmp_path,
        "actor.py",
        "import os\n"
        "@ray.remote(resources={'widget': 1})\n"
        "class A:\n"
        "    def where(self): return os.environ['RAY_CLOUD_INSTANCE_ID']\n"
        "print('ACTOR ON', ray.get(A.remote().where.remote(), timeout=120))\n",
    )
    result = cli("submit", cluster.config, actor)
    assert result.code == 0, result.text
    node = result.out.split("ACTOR ON ")[1].split()[0]
    by_id = {n["id"]: n for n in cluster.status(cli)["nodes"]}
    assert by_id[node]["node_type"] == "widget"

    gpu = script(
        tmp_path,
        "gpu.py",
        "@ray.remote(num_gpus=1)\ndef f(): return 1\n"
        "ready, _ = ray.wait([f.remote()], timeout=20)\nprint('GPU READY', len(ready))\n",
    )
    job_id = cli("submit", cluster.config, "--detach", gpu).out.strip()

    def infeasible_reported():
        doc = cluster.status(cli)["autoscaler"] or {}
        return [i for i in doc.get("infeasible", []) if i["bundle"].get("GPU")]

    reported = wait_for(infeasible_reported, 60, "the GPU demand to be reported infeasible")
    assert "no node type has enough GPU" in reported[0]["reason"]
    text = cli("status", cluster.config).out
    assert "cannot place" in text and "no node type has enough GPU" in text
    assert cli("logs", cluster.config, job_id, "--follow").out.count("GPU READY 0") == 1
    before = {n["id"] for n in cluster.status(cli)["nodes"]}

    spread = script(
        tmp_path,
        "spread.py",
        "from ray.util.placement_group import placement_group, placement_group_table\n"
        "pg = placement_group([{'CPU': 1}] * 3, strategy='STRICT_SPREAD')\n"
        "ray.get(pg.ready(), timeout=120)\n"
        "print('NODES', len(set(placement_group_table(pg)['bundles_to_node_id'].values())))\n",
    )
    result = cli("submit", cluster.config, spread)
    assert result.code == 0, result.text
    assert "NODES 3" in result.out
    assert not any("GPU" in e["what"] for e in events(cluster.status(cli), "launch"))
    assert before <= {n["id"] for n in cluster.status(cli)["nodes"]}

    request = script(
        tmp_path,
        "request.py",
        "from ray.autoscaler.sdk import request_resources\n"
        "request_resources(num_cpus=5)\n"
        "deadline = time.time() + 120\n"
        "while ray.cluster_resources().get('CPU', 0) < 5 and time.time() < deadline:\n"
        "    time.sleep(0.5)\n"
        "print('CPUS', int(ray.cluster_resources()['CPU']))\n",
    )
    result = cli("submit", cluster.config, request)
    assert result.code == 0, result.text
    assert "CPUS 5" in result.out
    assert any("request_resources" in e["reason"] for e in events(cluster.status(cli), "launch"))


def test_monitor_killed_mid_scale_up_is_restarted_without_leaks(
    make_cluster, cli, rayctl_home, tmp_path
):
    cluster = make_cluster("restart", idle_timeout_minutes=10)
    assert cli("up", cluster.config, "--yes").code == 0
    job_id = cli("submit", cluster.config, "--detach", EXAMPLE, "12", "6", "0").out.strip()

    def launching():
        doc = cluster.status(cli)["autoscaler"] or {}
        return doc.get("booting")

    wait_for(launching, 60, "the monitor to start launching workers")
    head = next(n for n in cluster.status(cli)["nodes"] if n["kind"] == "head")
    monitor_pid_file = (
        rayctl_home / "clusters" / cluster.name / "nodes" / head["id"] / ".rayctl" / "procs"
    )
    os.kill(int((monitor_pid_file / "monitor" / "pid").read_text()), signal.SIGKILL)

    restarted = cli("up", cluster.config, "--yes")  # resumes half-done launches, new monitor
    assert restarted.code == 0, restarted.text
    assert cli("logs", cluster.config, job_id, "--follow").code == 0

    status = cluster.status(cli)
    assert len(workers(status)) == 4  # the target: max_workers, for 12 pending tasks
    ids = {n["id"] for n in status["nodes"]}
    token = ray_token_file(rayctl_home, cluster.name)
    nodes = list_ray_nodes(status["gcs_address"], token_file=token)
    alive = {r.instance_id for r in nodes if r.alive}
    assert alive == ids
    # Every process of the cluster belongs to a node it has, or to its monitor.
    for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
        markers = proc_markers(pid)
        if markers.get("RAYCTL_CLUSTER") == cluster.name and "RAYCTL_PROC" in markers:
            assert markers["RAYCTL_PROC"] in ids | {"monitor"}, (pid, markers)


def test_a_type_whose_launches_fail_is_backed_off_and_nothing_leaks(make_cluster, cli, tmp_path):
    cluster = make_cluster(
        "backoff",
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            "broken": {
                "resources": {"CPU": 1, "gizmo": 1},
                "min_workers": 0,
                "max_workers": 2,
                "worker_setup_commands": ["echo cannot set up; exit 3"],
            },
        },
    )
    assert cli("up", cluster.config, "--yes").code == 0
    job = script(
        tmp_path,
        "gizmo.py",
        "@ray.remote(resources={'gizmo': 1})\ndef f(): return 1\n"
        "ready, _ = ray.wait([f.remote()], timeout=25)\nprint('GIZMO READY', len(ready))\n",
    )
    job_id = cli("submit", cluster.config, "--detach", job).out.strip()

    def backed_off():
        doc = cluster.status(cli)["autoscaler"] or {}
        return doc if doc.get("backoff", {}).get("broken") else None

    doc = wait_for(backed_off, 60, "the broken type to be backed off")
    assert doc["backoff"]["broken"]["failures"] >= 1
    assert any("exit 3" in f["reason"] or "cannot set up" in f["reason"] for f in doc["failures"])
    assert "backing off broken" in cli("status", cluster.config).out
    assert "GIZMO READY 0" in cli("logs", cluster.config, job_id, "--follow").out
    # The failed node was terminated, not left behind; within the backoff nothing relaunches.
    assert workers(cluster.status(cli)) == []
