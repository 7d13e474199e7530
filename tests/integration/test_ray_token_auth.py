"""Ray token authentication on a real local cluster: on by default, a client without the token
is refused by the GCS and the dashboard, rayctl's own clients (submit, the monitor scaling up,
status) keep working, the token stays 0600 and out of logs, output and process listings; and
the opt-out runs Ray without it, with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rayctl.paths import ray_token_file
from rayctl.runtime.ray_adapter import list_ray_nodes
from tests.conftest import SPREAD_JOB, cluster_pids, wait_for

pytestmark = pytest.mark.integration

# A GCS client in a process of its own whose environment is only what the test gives it.
CLIENT = """\
import sys
from ray._raylet import GcsClient
print("nodes:", len(GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10)))
"""

HEAD_AND_ONE_WORKER_ON_DEMAND = {
    "ray.head.default": {"resources": {"CPU": 1}},
    "ray.worker.cpu": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 1},
}


def gcs_client(gcs_address: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-c", CLIENT, gcs_address],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def dashboard_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(f"{url}/api/version")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet
        return 0


def test_token_auth_is_on_by_default(make_cluster, cli, rayctl_home, tmp_path):
    cluster = make_cluster("token", available_node_types=HEAD_AND_ONE_WORKER_ON_DEMAND)
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    assert "token authentication is off" not in up.text
    status = cluster.status(cli)
    gcs = status["gcs_address"]
    (head,) = status["nodes"]

    # The token: 0600 here, and the head's copy 0600 in a 0700 directory.
    token_file = ray_token_file(rayctl_home, cluster.name)
    token = token_file.read_text()
    assert token_file.stat().st_mode & 0o777 == 0o600
    head_home = rayctl_home / "clusters" / cluster.name / "nodes" / head["id"]
    on_head = head_home / ".rayctl" / "clusters" / cluster.name / "ray_auth_token"
    assert on_head.read_text() == token
    assert on_head.stat().st_mode & 0o777 == 0o600
    assert on_head.parent.stat().st_mode & 0o777 == 0o700

    # The GCS refuses a client without the token and accepts one with it.
    refused = gcs_client(gcs, tmp_path)
    assert refused.returncode != 0
    assert "Authentication token is missing or incorrect" in refused.stderr, refused.stderr
    accepted = gcs_client(gcs, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    assert accepted.returncode == 0, accepted.stderr
    assert "nodes: 1" in accepted.stdout

    # Commands on the head have the token (by its path): `ray status` there works. (`rayctl`
    # in a process of its own: this one's Ray clients set RAY_AUTH_* in its environment.)
    bin_dir = Path(sys.executable).parent
    ray_status = subprocess.run(
        [bin_dir / "rayctl", "exec", cluster.config, f"{bin_dir / 'ray'} status --address {gcs}"],
        env={k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ray_status.returncode == 0 and "Active:" in ray_status.stdout, ray_status.stderr

    # So does the dashboard.
    url = status["dashboard_url"]
    wait_for(lambda: dashboard_status(url, token) == 200, 60, "the dashboard, with the token")
    assert dashboard_status(url, None) == 401
    assert dashboard_status(url, "0" * len(token)) == 403  # a wrong token: forbidden

    # A job that uses Ray runs; its second actor needs a worker the monitor launches on
    # demand, which joins the GCS with the token it was given.
    job = tmp_path / "spread.py"
    job.write_text(SPREAD_JOB)
    submitted = cli("submit", cluster.config, job)
    assert submitted.code == 0, submitted.text
    assert "hosts: [" in submitted.out
    status_out = cli("status", cluster.config)
    status_json = cli("status", cluster.config, "--json")
    workers = [n for n in cluster.status(cli)["nodes"] if n["kind"] == "worker"]
    assert len(workers) == 1 and workers[0]["ray"] in ("IDLE", "RUNNING")
    worker_home = rayctl_home / "clusters" / cluster.name / "nodes" / workers[0]["id"]
    on_worker = worker_home / ".rayctl" / "clusters" / cluster.name / "ray_auth_token"
    assert on_worker.read_text() == token
    assert on_worker.stat().st_mode & 0o777 == 0o600
    alive = list_ray_nodes(gcs, token_file=token_file)
    assert {r.instance_id for r in alive if r.alive} == {head["id"], workers[0]["id"]}

    # The token itself appears in no output, no file rayctl keeps but its copies (setup and
    # monitor logs, start scripts, the monitor's config), and no process's command line or
    # environment (only its path does).
    for result in (up, submitted, status_out, status_json):
        assert token not in result.text
    assert token not in ray_status.stdout + ray_status.stderr
    copies = {token_file, on_head, on_worker}
    leaks = [
        path
        for path in rayctl_home.rglob("*")
        if path.is_file() and path not in copies and token in path.read_text(errors="replace")
    ]
    assert leaks == []
    assert any((rayctl_home / "logs" / cluster.name).iterdir())  # setup logs were scanned
    pids = cluster_pids(cluster.name)
    assert pids
    for pid in pids:
        for name in ("cmdline", "environ"):
            try:
                assert token.encode() not in Path(f"/proc/{pid}/{name}").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue

    assert cli("down", cluster.config, "--yes").code == 0
    assert not token_file.exists()  # a new cluster of this name gets a new token


def test_opting_out_runs_ray_without_a_token_and_warns(make_cluster, cli, rayctl_home, tmp_path):
    cluster = make_cluster(
        "notoken",
        available_node_types={"ray.head.default": {"resources": {"CPU": 1}}},
        rayctl={"security": {"ray_token_auth": False}},
    )
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    assert "warning: Ray token authentication is off" in up.err
    assert not ray_token_file(rayctl_home, cluster.name).exists()
    gcs = cluster.status(cli)["gcs_address"]
    accepted = gcs_client(gcs, tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert len(list_ray_nodes(gcs, token_file=None)) == 1
    again = cli("up", cluster.config, "--yes")
    assert "warning: Ray token authentication is off" in again.err  # each time
    # Jobs go through Ray Jobs without a token too.
    job = tmp_path / "hi.py"
    job.write_text("print('hi without a token')\n")
    submitted = cli("submit", cluster.config, job)
    assert submitted.code == 0 and submitted.out == "hi without a token\n", submitted.text
    listed = json.loads(cli("jobs", cluster.config, "--json").out)["jobs"]
    assert [(j["status"], j["exit_code"]) for j in listed] == [("SUCCEEDED", 0)]
