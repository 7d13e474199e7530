"""The ssh provider end to end on real sshd hosts (network namespaces, tests/sshhosts.py):
up, jobs across hosts, scale up from the pool and back down, exec, down leaving nothing; an
unreachable host, a wrong key and a failing setup command."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rayctl.paths import cluster_record, ray_token_file, removed_record
from rayctl.runtime.ray_adapter import RayUnreachable, list_ray_nodes
from tests.conftest import SPREAD_JOB, WHERE_JOB, unique_name, wait_for
from tests.integration.test_job_packages import tiny_wheel
from tests.sshhosts import HostNetwork, SSHHost

pytestmark = pytest.mark.integration

RAYCTL = str(Path(sys.executable).parent / "rayctl")


@dataclass
class OnPremCluster:
    name: str
    config: Path
    head: SSHHost
    workers: list[SSHHost]

    def status(self, cli) -> dict:
        result = cli("status", self.config, "--json")
        assert result.code == 0, result.text
        return json.loads(result.out)

    def workers_in_status(self, cli) -> list[str]:
        return sorted(n["id"] for n in self.status(cli)["nodes"] if n["kind"] == "worker")


@pytest.fixture
def onprem(host_network: HostNetwork, tmp_path: Path, rayctl_home: Path, cli, monkeypatch):
    """Factory of clusters on the shared hosts (head on the first); each is downed after the
    test, and the test fails if any process outlives `down` on any host."""
    monkeypatch.setenv("RAYCTL_SSH_CONNECT_ATTEMPTS_S", "3")  # unreachable hosts fail fast
    made: list[OnPremCluster] = []

    def make(
        *, workers: int = 2, min_workers: int = 1, key: Path | None = None, **overrides: object
    ) -> OnPremCluster:
        head, *pool = host_network.hosts
        name = unique_name("onprem")
        config = {
            "cluster_name": name,
            "max_workers": workers,
            "idle_timeout_minutes": 0.1,
            "provider": {
                "type": "ssh",
                "head_ip": head.address,
                "worker_ips": [h.address for h in pool[:workers]],
            },
            "auth": {"ssh_user": "root", "ssh_private_key": str(key or host_network.client_key)},
            "available_node_types": {
                "head": {"resources": {"CPU": 0}},
                "worker": {
                    "resources": {"CPU": 1},
                    "min_workers": min_workers,
                    "max_workers": workers,
                },
            },
            "head_node_type": "head",
            "rayctl": {"runtime": {"python": sys.executable}},  # shared by the hosts
            **overrides,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster = OnPremCluster(name, path, head, pool[:workers])
        made.append(cluster)
        return cluster

    yield make
    survivors = {}
    for cluster in made:
        cli("down", cluster.config, "--yes")
        for host in host_network.hosts:
            host.start_sshd()  # a test may have stopped it
            left = _wait_until_quiet(host)
            if left:
                survivors[host.name] = left
                host.kill(left)
    assert not survivors, f"processes outlived `rayctl down`: {survivors}"


def _in_terminal(argv: list[str], typed: str, timeout_s: float = 60) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as its stdin/stdout, type `typed`, return its exit
    code and what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    os.write(master, typed.encode())
    output = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal closed it
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), output.decode(errors="replace")


def _wait_until_quiet(host: SSHHost, timeout_s: float = 15) -> dict[int, str]:
    deadline = time.monotonic() + timeout_s
    while (left := host.processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_onprem_lifecycle(
    onprem, cli, tmp_path: Path, rayctl_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cluster = onprem(workers=2)
    first, second = cluster.workers

    result = cli("up", cluster.config, "--yes")
    assert result.code == 0, result.text
    assert cluster.workers_in_status(cli) == [first.address]  # min_workers, from the pool
    status = cluster.status(cli)
    assert status["head_ip"] == cluster.head.address
    assert status["monitor_running"]
    # The monitor on the head reaches workers with the cluster's key, readable by root only.
    head_key = cluster.head.home / ".rayctl" / "clusters" / cluster.name / "ssh_key"
    assert (
        head_key.read_bytes()
        == Path(yaml.safe_load(cluster.config.read_text())["auth"]["ssh_private_key"]).read_bytes()
    )
    assert head_key.stat().st_mode & 0o777 == 0o600
    # Ray runs with token authentication: the cluster's token, 0600 here, on the head and on
    # the worker, refused without it.
    token = ray_token_file(rayctl_home, cluster.name)
    secret = token.read_text()
    assert token.stat().st_mode & 0o777 == 0o600
    for host in (cluster.head, first):
        copy = host.home / ".rayctl" / "clusters" / cluster.name / "ray_auth_token"
        assert copy.read_text() == secret and copy.stat().st_mode & 0o777 == 0o600
    with pytest.raises(RayUnreachable, match="Authentication token is missing or incorrect"):
        list_ray_nodes(status["gcs_address"], token_file=None)
    # Every Ray node advertises its own host's address.
    ray_nodes = list_ray_nodes(status["gcs_address"], token_file=token)
    assert sorted((r.instance_id, r.ip) for r in ray_nodes if r.alive) == sorted(
        [(cluster.head.address, cluster.head.address), (first.address, first.address)]
    )

    exec_result = cli("exec", cluster.config, "hostname")
    assert exec_result.code == 0 and exec_result.out.strip() == cluster.head.name
    # Commands on the head have the token (by its path) for `ray status` and drivers.
    ray_status = cli("exec", cluster.config, f"{Path(sys.executable).parent}/ray status")
    assert ray_status.code == 0 and "Active:" in ray_status.out, ray_status.text
    assert secret not in ray_status.text

    # attach: a shell on the head, in a terminal of its own.
    code, screen = _in_terminal(
        [RAYCTL, "attach", str(cluster.config)], 'echo "tty=$(tty) on=$(hostname)"; exit 4\n'
    )
    assert code == 4, screen
    assert "tty=/dev/pts/" in screen and f"on={cluster.head.name}" in screen

    # rsync-up a directory, read it there, rsync-down it back.
    up_dir = tmp_path / "up"
    (up_dir / "sub").mkdir(parents=True)
    (up_dir / "a.txt").write_text("alpha\n")
    (up_dir / "sub" / "b.txt").write_text("beta\n")
    assert cli("rsync-up", cluster.config, up_dir, "~/synced").code == 0
    assert cli("exec", cluster.config, "cat ~/synced/sub/b.txt").out == "beta\n"
    down_dir = tmp_path / "down"
    assert cli("rsync-down", cluster.config, "~/synced", down_dir).code == 0
    assert (down_dir / "a.txt").read_text() == "alpha\n"
    assert (down_dir / "sub" / "b.txt").read_text() == "beta\n"

    # Demand grows the cluster from the pool: the job's second actor needs another host.
    job = tmp_path / "spread.py"
    job.write_text(SPREAD_JOB)
    submitted = cli("submit", cluster.config, job)
    assert submitted.code == 0, submitted.text
    assert f"hosts: {sorted([first.name, second.name])}" in submitted.out
    assert cluster.workers_in_status(cli) == sorted([first.address, second.address])
    # `up` keeps the worker the monitor launched: the head computes the same launch hash
    # from its own copy of the key. And it keeps the monitor's pin of that worker's host key
    # (this machine never saw the host): `up` merges pins, it does not overwrite them.
    head_known = cluster.head.home / ".rayctl" / "clusters" / cluster.name / "known_hosts"
    pinned_by_monitor = _pins(head_known, second.address)
    assert pinned_by_monitor
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0 and "nothing changed" in again.text, again.text
    assert cluster.workers_in_status(cli) == sorted([first.address, second.address])
    assert _pins(head_known, second.address) == pinned_by_monitor

    # A detached job, and its output read back over SSH.
    detached = cli("submit", cluster.config, "--detach", job)
    assert detached.code == 0, detached.text
    followed = cli("logs", cluster.config, detached.out.strip(), "--follow")
    assert followed.code == 0 and "hosts: [" in followed.out, followed.text
    # Both jobs ran under Ray's job supervision on the head, reached over SSH.
    listed = json.loads(cli("jobs", cluster.config, "--json").out)["jobs"]
    by_id = {j["job_id"]: j for j in listed}
    assert by_id[detached.out.strip()]["status"] == "SUCCEEDED"
    assert [j["exit_code"] for j in listed] == [0, 0] and len(by_id) == 2

    # Idle: back to min_workers, and the host given back has no Ray left on it.
    wait_for(lambda: len(cluster.workers_in_status(cli)) == 1, 90, "the idle worker to go")
    (gone,) = {first.address, second.address} - set(cluster.workers_in_status(cli))
    gone_host = next(h for h in cluster.workers if h.address == gone)
    assert _wait_until_quiet(gone_host) == {}

    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    for host in (cluster.head, *cluster.workers):
        assert _wait_until_quiet(host) == {}, f"{host.name} still runs processes"
    assert not (cluster.head.home / ".rayctl" / "pool" / cluster.name).exists()
    # No host keeps the cluster's key (the head had a copy for its monitor) or its Ray token
    # (every node had one; this machine's goes with `down` too), nor any claim.
    key = Path(yaml.safe_load(cluster.config.read_text())["auth"]["ssh_private_key"])
    # Of the tests' temporary directories only this test's: the others (tests run before it
    # in this process) may hold copies of the test network's key of their own.
    skip = (tmp_path_factory.getbasetemp(), tmp_path)
    assert _files_holding(key.read_bytes(), Path("/tmp"), besides=key, skip=skip) == []
    assert not token.exists()
    assert _files_holding(secret.encode(), Path("/tmp"), besides=key, skip=skip) == []
    for host in (cluster.head, *cluster.workers):
        assert list((host.home / ".rayctl" / "claims").glob("*")) == []


def _ray_nodes(status: dict, token: Path) -> list[tuple[str, str]]:
    nodes = list_ray_nodes(status["gcs_address"], token_file=token)
    return sorted((r.instance_id, r.ray_node_id) for r in nodes if r.alive)


def _pins(known_hosts: Path, host: str) -> list[str]:
    return [line for line in known_hosts.read_text().splitlines() if line.split()[0] == host]


def _files_holding(
    data: bytes, root: Path, *, besides: Path, skip: tuple[Path, Path] | None = None
) -> list[Path]:
    """Files under `root` but `besides` whose bytes include `data`; `skip` = (a directory,
    the one of its subdirectories still searched)."""
    found = []
    skipped, kept = skip or (None, None)
    for directory, dirs, files in os.walk(root):
        if skipped is not None and Path(directory) == skipped:
            dirs[:] = [d for d in dirs if skipped / d == kept]
        for name in files:
            path = Path(directory, name)
            if path == besides or path.is_symlink() or not path.is_file():
                continue
            try:
                if data in path.read_bytes():
                    found.append(path)
            except OSError:
                continue  # a socket, or gone meanwhile
    return found


def test_a_host_is_held_by_one_cluster_at_a_time(
    onprem, cli, host_network: HostNetwork, rayctl_home: Path
) -> None:
    first = onprem(workers=1)
    assert cli("up", first.config, "--yes").code == 0
    before = first.status(cli)

    # The same head: refused before anything is touched on it.
    second = onprem(workers=1)
    refused = cli("up", second.config, "--yes")
    assert refused.code == 3, refused.text
    assert f"host {first.head.address} is held by cluster {first.name}" in refused.err
    assert "rayctl down" in refused.err and "Traceback" not in refused.err
    assert not (first.head.home / ".rayctl" / "pool" / second.name).exists()

    # Another head, but the first cluster's worker: that host is not taken either.
    spare = host_network.hosts[3]
    third = onprem(
        workers=1,
        provider={
            "type": "ssh",
            "head_ip": spare.address,
            "worker_ips": [first.workers[0].address],
        },
    )
    taken = cli("up", third.config, "--yes")
    assert taken.code == 3, taken.text
    assert f"host {first.workers[0].address} is held by cluster {first.name}" in taken.err
    assert cli("down", third.config, "--yes").code == 0  # lets its own head go

    # The first cluster ran on undisturbed: the same Ray nodes, alive, and its monitor.
    after = first.status(cli)
    assert after["monitor_running"]
    token = ray_token_file(rayctl_home, first.name)
    assert _ray_nodes(after, token) == _ray_nodes(before, token)
    assert len(_ray_nodes(before, token)) == 2

    # Once it is down, its hosts are free for the other cluster.
    assert cli("down", first.config, "--yes").code == 0
    retried = cli("up", second.config, "--yes")
    assert retried.code == 0, retried.text
    down = cli("down", second.config, "--yes")
    assert down.code == 0, down.text


def test_unreachable_host_fails_alone(onprem, cli) -> None:
    cluster = onprem(workers=2, min_workers=2)
    broken = cluster.workers[1]
    broken.stop_sshd()

    result = cli("up", cluster.config, "--yes")
    assert result.code != 0
    assert broken.address in result.err and "cannot reach" in result.err
    status = cluster.status(cli)
    rows = {n["id"]: n for n in status["nodes"]}
    assert rows[cluster.head.address]["stage"] == "ready"
    assert rows[cluster.workers[0].address]["stage"] == "ready"
    # Failed, with why; or already retried by the monitor, which says why it failed again.
    broken_row = rows.get(broken.address, {})
    failures = (status["autoscaler"] or {}).get("failures", [])
    assert (broken_row.get("stage") == "failed" and "cannot reach" in broken_row["error"]) or any(
        f["what"] == broken.address and "cannot reach" in f["reason"] for f in failures
    ), status

    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text


def test_wrong_key_is_an_authentication_error_and_starts_nothing(
    onprem, cli, host_network: HostNetwork
) -> None:
    cluster = onprem(workers=1, key=host_network.wrong_key)
    result = cli("up", cluster.config, "--yes")
    assert result.code == 3, result.text
    assert "did not accept the key" in result.err and "Traceback" not in result.err
    assert str(host_network.wrong_key) in result.err
    for host in host_network.hosts:
        assert host.processes() == {}
    assert not (cluster.head.home / ".rayctl" / "pool" / cluster.name).exists()


def test_failing_setup_command_marks_the_node_failed(onprem, cli) -> None:
    cluster = onprem(workers=1, worker_setup_commands=["echo about to fail", "exit 7"])
    result = cli("up", cluster.config, "--yes")
    assert result.code == 1
    assert "failed while setting-up" in result.err and "about to fail" in result.err, result.err
    rows = {n["id"]: n for n in cluster.status(cli)["nodes"]}
    assert rows[cluster.workers[0].address]["stage"] == "failed"
    assert "about to fail" in rows[cluster.workers[0].address]["error"]


# Ray's example start commands: `ray stop`, then `ray start` without --block (Ray daemonizes),
# the head with Ray's autoscaler config. Here on a GCS port of the config's choosing.
RAY_STYLE_HEAD = [
    "ray stop",
    "ulimit -n 65536; ray start --head --port=6390 --num-cpus=0 --object-manager-port=8076 "
    "--autoscaling-config=~/ray_bootstrap_config.yaml",
]
RAY_STYLE_WORKER = [
    "ray stop",
    "ulimit -n 65536; ray start --address=$RAY_HEAD_IP:6390 --num-cpus=1 "
    "--object-manager-port=8076",
]


def _raylets(host: SSHHost) -> list[int]:
    return [pid for pid, cmd in host.processes().items() if "/raylet/raylet " in cmd]


def test_ray_style_start_commands(onprem, cli, tmp_path: Path, rayctl_home: Path) -> None:
    cluster = onprem(
        workers=1,
        head_start_ray_commands=RAY_STYLE_HEAD,
        worker_start_ray_commands=RAY_STYLE_WORKER,
    )
    (worker,) = cluster.workers
    hosts = (cluster.head, worker)
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    assert "runs with --no-monitor and without --autoscaling-config" in up.err

    # The monitor, status and the worker reach the GCS the head's command started.
    status = cluster.status(cli)
    assert status["gcs_address"] == f"{cluster.head.address}:6390"
    assert status["monitor_running"]
    assert {n["id"]: n["stage"] for n in status["nodes"]} == {
        cluster.head.address: "ready",
        worker.address: "ready",
    }
    token = ray_token_file(rayctl_home, cluster.name)
    seen = {r.instance_id: r for r in list_ray_nodes(status["gcs_address"], token_file=token)}
    assert seen.keys() == {cluster.head.address, worker.address}  # RAY_CLOUD_INSTANCE_ID too
    # The node types' resources reached Ray, not what it detects on the host.
    assert seen[cluster.head.address].total.get("CPU", 0) == 0
    assert seen[worker.address].total["CPU"] == 1
    # rayctl's monitor is the only autoscaler: Ray's own never ran (it would have logs).
    ray_tmp = cluster.head.dir / "ray-tmp"  # the head's /tmp/ray; links point inside the host
    logs = ray_tmp / Path(os.readlink(ray_tmp / "session_latest")).name / "logs"
    assert (logs / "raylet.out").exists() and not list(logs.glob("monitor.*"))

    job = tmp_path / "where.py"
    job.write_text(WHERE_JOB)
    ran = cli("submit", cluster.config, job)
    assert ran.code == 0 and f"ran on: {worker.name}" in ran.out, ran.text

    # Changed start commands restart Ray on the head, and so on its worker: the old raylets
    # are stopped (rayctl tracked the Ray those commands left in the background).
    before = {host.name: _raylets(host) for host in hosts}
    assert all(len(pids) == 1 for pids in before.values()), before
    config = yaml.safe_load(cluster.config.read_text())
    config["head_start_ray_commands"] = ["echo second start", *RAY_STYLE_HEAD]
    cluster.config.write_text(yaml.safe_dump(config, sort_keys=False))
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0, again.text
    after = {host.name: _raylets(host) for host in hosts}
    for host in hosts:
        assert len(after[host.name]) == 1 and after[host.name] != before[host.name], after
        assert before[host.name][0] not in host.processes()
    assert cluster.status(cli)["monitor_running"]
    ran = cli("submit", cluster.config, job)
    assert ran.code == 0 and f"ran on: {worker.name}" in ran.out, ran.text

    # The worker's slot lives exactly as long as the Ray it tracks: its raylet killed, the
    # slot's leader (a PID in the host's own namespace) ends too.
    leader = int((worker.home / ".rayctl" / "procs" / worker.address / "pid").read_text())
    assert worker.running(leader)
    worker.kill(after[worker.name])
    wait_for(lambda: not worker.running(leader), 15, "the worker's slot to end with its raylet")

    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    for host in hosts:
        assert _wait_until_quiet(host) == {}, f"{host.name} still runs processes"


AUTOSTOP_S = 12  # `up --autostop 0.2 --down`
# Runs a task on the worker with a package from the wheelhouse, then waits for argv[1].
PROBE_THEN_WAIT = """\
import os, sys, time, ray

@ray.remote(num_cpus=1)  # the head has no CPU: this runs on the worker
def probe():
    import rayctl_probe_pkg
    return rayctl_probe_pkg.VALUE, ray.util.get_node_ip_address()

print("probe", *ray.get(probe.remote()), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.2)
"""


def test_autostop_stops_the_hosts_for_up_then_removes_the_cluster(
    onprem, cli, tmp_path: Path, rayctl_home: Path, host_network: HostNetwork
) -> None:
    """One cluster, both kinds of autostop. Without `down`: Ray stops on every host, the
    hosts stay the cluster's, and `up` starts it again without setting it up; a wheel added
    to the wheelhouse meanwhile reaches the nodes with that `up`, and a job's `--pip`
    installs it on the worker. With `down`: that running job keeps the cluster past the
    timeout; once it ends the head releases the worker, then its own host, and nothing of
    the cluster is left on either."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    runtime = {"python": sys.executable, "wheelhouse": str(wheelhouse)}
    cluster = onprem(workers=1, rayctl={"runtime": runtime, "autostop": {"idle_minutes": 0.1}})
    (worker,) = cluster.workers
    hosts = (cluster.head, worker)
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    secret = ray_token_file(rayctl_home, cluster.name).read_text()

    # Idle from the start: Ray and the monitor end on both hosts, which stay claimed.
    wait_for(lambda: not any(h.processes() for h in hosts), 120, "autostop to stop Ray")
    status = cluster.status(cli)
    assert status["autostop"]["stopped_at"] is not None and not status["autostop"]["down"]
    assert not status["monitor_running"] and len(status["nodes"]) == 2
    assert "`rayctl up` starts it again" in cli("status", cluster.config).out
    for host in hosts:
        assert (host.home / ".rayctl" / "claims" / host.address).exists()

    tiny_wheel(wheelhouse)  # added since the nodes were set up: `up` brings it to them
    config = yaml.safe_load(cluster.config.read_text())
    del config["rayctl"]["autostop"]  # resumed without autostop: it stays up
    cluster.config.write_text(yaml.safe_dump(config, sort_keys=False))
    resumed = cli("up", cluster.config, "--yes", "--json")
    assert resumed.code == 0, resumed.text
    assert sorted(json.loads(resumed.out)["outcomes"].values()) == ["started", "started"]
    status = cluster.status(cli)
    assert status["monitor_running"]
    assert status["autostop"] is None or status["autostop"]["stopped_at"] is None

    job, release = tmp_path / "probe.py", tmp_path / "release"
    job.write_text(PROBE_THEN_WAIT)
    pip = ("--pip", "rayctl-probe-pkg==1.0")
    submitted = cli("submit", "--detach", *pip, cluster.config, job, release)
    assert submitted.code == 0, submitted.text
    job_id = submitted.out.strip()

    def probed() -> str | None:
        logs = cli("logs", cluster.config, job_id).out
        (listed,) = json.loads(cli("jobs", cluster.config, "--json").out)["jobs"]
        return logs if "probe " in logs or listed["status"] != "RUNNING" else None

    logs = wait_for(probed, 180, "the job's task on the worker")
    assert f"probe from-the-wheelhouse {worker.address}" in logs, logs

    on = cli("up", cluster.config, "--yes", "--autostop", AUTOSTOP_S / 60, "--down")
    assert on.code == 0, on.text
    time.sleep(AUTOSTOP_S + 6)  # past the timeout, and some of the monitor's ticks
    status = cluster.status(cli)
    assert status["autostop"]["down"] is True
    assert status["autostop"]["busy"].startswith("job(s) running"), status["autostop"]
    assert all(h.processes() for h in hosts)

    release.touch()  # the job ends: idle, and the cluster goes
    claims = [h.home / ".rayctl" / "claims" / h.address for h in hosts]
    wait_for(
        lambda: not any(h.processes() for h in hosts) and not any(c.exists() for c in claims),
        AUTOSTOP_S + 120,
        "the head to remove the cluster",
    )
    for host in hosts:
        assert not (host.home / ".rayctl" / "clusters" / cluster.name).exists()  # secrets
        assert not (host.home / ".rayctl" / "removed").exists()
    assert not (cluster.head.home / ".rayctl" / "pool" / cluster.name).exists()
    assert not (cluster.head.home / ".rayctl" / "monitor").exists()
    key = host_network.client_key
    assert _files_holding(secret.encode(), host_network.dir, besides=key) == []
    assert _files_holding(key.read_bytes(), host_network.dir, besides=key) == []

    # This machine still has the cluster: `down` finds nothing left and forgets it.
    gone = cli("status", cluster.config)
    assert gone.code == 4 and "has no nodes" in gone.err, gone.text
    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    assert not ray_token_file(rayctl_home, cluster.name).exists()
    assert not cluster_record(rayctl_home, cluster.name).exists()
    assert removed_record(rayctl_home, cluster.name).exists()
    assert not (cluster.head.home / ".rayctl" / "pool" / cluster.name).exists()
