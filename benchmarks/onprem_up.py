"""Benchmark: `rayctl up`/`down` on on-prem SSH hosts against Ray's own `ray up`/`ray down`.

Three real sshd hosts (tests/sshhosts.py: network + PID + mount namespaces on a bridge, the
same hosts the integration tests use) make a head + 2 workers. In one run, side by side,
rounds rotating which side goes first, on the same hosts and with the same cluster shape,
Ray's on-prem one: a single node type, `local.cluster.node`, for the head and both workers
(min_workers = max_workers = 2), no `resources` (Ray detects each host's), no setup commands
(the runtime is already on the hosts: they share this machine's filesystem and venv):

  rayctl  `rayctl up CONFIG --yes` with the ssh provider (head_ip, worker_ips, the harness's
          key for root, rayctl.runtime.python = this venv's python); the node type is written
          out explicitly, as Ray synthesises it. Timed until the command returns (it returns
          once every node is registered in Ray; all 3 are then checked ALIVE in its GCS).
          Then `rayctl up` again on the unchanged cluster (target: under 3 s), then
          `rayctl down CONFIG --yes`.
  ray     `.venv/bin/ray up -y CONFIG` with Ray's `local` provider (head_ip, worker_ips, the
          same key) and Ray's usual start commands: on the head `ray stop; ray start --head
          --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml
          --disable-usage-stats`, on workers `ray stop; ray start
          --address=$RAY_HEAD_IP:6379 --disable-usage-stats`. `ray up` starts only the
          head; the autoscaler there (Ray's v1: RAY_UP_enable_autoscaler_v2=0, because v2
          counts the head as a worker with this provider and starts one worker too few) then
          starts the workers over SSH. Timed until `ray up` returns and until all 3 nodes are
          ALIVE in its GCS. Then `ray down -y CONFIG`.

Both sides' GCS (on the head, port 6379) is polled every 0.2 s from the moment `up` starts
(rayctl.runtime.ray_adapter.list_ray_nodes) for when it answers and counts 1, 2, 3 nodes.
After each `down` the hosts are watched for up to 10 s: how long until no process is left on
any of them ("quiet"), or what is left. `ray down` stops Ray on the head only (its `ray stop`)
and never stops the workers of the local provider, so what it leaves is listed and killed by
PID; every host must be empty before the next side starts.

What Ray needs here that is not obvious: the hosts must resolve their own hostname (`ray
start` finds its node IP by a UDP "connect" to 8.8.8.8, which fails without a default route,
then by the hostname; failing that it picks 127.0.0.1 and the workers never join): the
harness gives each host an /etc/hosts naming itself. `ray` must be on the hosts' PATH (the
harness mounts this venv's there; Ray's commands are bare `ray`), and `ray up`/`ray down`
need ssh and rsync on this machine. `ray up`'s state on this machine
(the local provider's cluster-<name>.state, its config cache) goes to a temporary TMPDIR;
its SSH control sockets are always under /tmp/ray_ssh_*, and are closed after each round.

Prints each measure's medians, the ratio rayctl / Ray and the issue's targets: `rayctl up` in
at most half the time `ray up` takes until all nodes are alive, and a repeated `rayctl up`
under 3 s; then each side's timeline. Progress goes to stderr. Cleanup runs on failure,
Ctrl-C and SIGTERM: `rayctl down`, every process left on the hosts killed by PID, and the
hosts removed (which kills whatever runs on them). It never runs `ray stop` on this machine,
never signals by name, and only contacts the hosts' addresses. Needs root (the hosts are
namespaces).

Run from the repository root, as root (3 rounds take 3 to 4 minutes on 2 cores):

    .venv/bin/python benchmarks/onprem_up.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from getpass import getuser
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml
from common import INTERRUPTS, log

from rayctl.paths import ray_token_file
from rayctl.runtime.ray_adapter import RayUnreachable, list_ray_nodes
from tests.sshhosts import SSHD, HostNetwork, SSHHost

BIN = Path(sys.executable).parent
WORKERS = 2
NODES = 1 + WORKERS
GCS_PORT = 6379
POLL_S = 0.2
UP_TIMEOUT_S = 180.0  # for each `up` and for Ray's nodes to come alive after `ray up`
DOWN_TIMEOUT_S = 120.0
QUIET_WAIT_S = 10.0  # after `down` returns, how long hosts may take to be left empty
TARGET_UP_RATIO = 0.5  # rayctl up in at most half the time of `ray up`
TARGET_REPEAT_S = 3.0  # a repeated `rayctl up` on an unchanged cluster
NODE_TYPE = "local.cluster.node"  # Ray's one type for on-prem hosts
# `[ 14.4s] 10.213.7.2 (head, local.cluster.node): ready`, one per stage change
STAGE_LINE = re.compile(r"^\[\s*[\d.]+s\] \S+ \((\w+), [^)]*\): ([\w-]+)$")

Measures = dict[str, Any]


# -- commands and hosts ------------------------------------------------------------------


def run(
    argv: list[str], *, env: dict[str, str], log_path: Path, timeout_s: float
) -> tuple[float, list[tuple[float, str]]]:
    """Run a command (in a session of its own: Ctrl-C reaches only this script, which then
    cleans up); its duration and output lines, each with when it arrived. Output is also
    appended to `log_path`."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[tuple[float, str]] = []
    timer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        with open(log_path, "a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            for line in proc.stdout:
                lines.append((time.monotonic() - started, line.rstrip()))
                out.write(line)
        code = proc.wait()
    except BaseException:
        with INTERRUPTS.cleanup():
            stop_group(proc)
        raise
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    if code:
        tail = "\n".join(line for _, line in lines[-30:])
        why = f"timed out after {timeout_s:g} s" if elapsed >= timeout_s else f"exited {code}"
        raise RuntimeError(f"{' '.join(argv[:2])} {why} (log: {log_path}):\n{tail}")
    return elapsed, lines


def stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL, to the process group of a command this script started."""
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
            return


def short_name(cmdline: str) -> str:
    """`raylet`, `gcs_server`, `log_monitor.py`, `ray::DashboardAgent`, ... for a listing."""
    if cmdline.startswith("ray::") or not cmdline:
        return cmdline or "<zombie>"
    words = cmdline.split()
    if not os.path.basename(words[0]).startswith("python"):
        return os.path.basename(words[0])  # raylet, gcs_server, ssh, bash, ...
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1]
    return os.path.basename(next((w for w in words if w.endswith(".py")), words[0]))


def leftovers(hosts: list[SSHHost]) -> dict[str, dict[int, str]]:
    return {h.name: procs for h in hosts if (procs := h.processes())}


def wait_quiet(hosts: list[SSHHost], until: float) -> dict[str, dict[int, str]]:
    """Until no process is left on any host (then {}), or what is left at `until`."""
    while (left := leftovers(hosts)) and time.monotonic() < until:
        time.sleep(POLL_S)
    return left


def kill_leftovers(hosts: list[SSHHost]) -> dict[str, list[str]]:
    """Kill, by PID, every process left on the hosts; what was killed, by host."""
    killed: dict[str, list[str]] = {}
    for _ in range(5):  # a process may fork while it is being killed
        left = leftovers(hosts)
        if not left:
            return killed
        for host in hosts:
            if host.name in left:
                host.kill(left[host.name])
                killed.setdefault(host.name, []).extend(map(short_name, left[host.name].values()))
        wait_quiet(hosts, time.monotonic() + 5)
    if left := leftovers(hosts):
        raise RuntimeError(f"processes survive SIGKILL on the hosts: {left}")
    return killed


def describe(left: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{name}: {len(names)} ({', '.join(sorted(set(names)))})" for name, names in left.items()
    )


@dataclass
class GcsPoller:
    """Polls the head's GCS every POLL_S from `started`: when it first answered and first
    counted n of the hosts alive."""

    gcs_address: str
    addresses: set[str]
    token_file: Path | None  # the cluster's Ray token (None: Ray's own `ray up`, without)
    started: float
    timeline: dict[str, float] = field(default_factory=dict)
    alive: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> GcsPoller:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            count = alive_count(self.gcs_address, self.addresses, self.token_file)
            at = time.monotonic() - self.started
            if count is not None:
                self.timeline.setdefault("GCS answers", at)
                for n in range(1, count + 1):
                    self.timeline.setdefault(f"{n} node(s) alive", at)
                self.alive = count
            self._stop.wait(POLL_S)

    def wait_all(self, timeout_s: float) -> float:
        """Seconds since `started` when all hosts were first alive."""
        deadline = time.monotonic() + timeout_s
        key = f"{len(self.addresses)} node(s) alive"
        while key not in self.timeline:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {self.alive} of {len(self.addresses)} nodes alive in Ray "
                    f"after {timeout_s:g} s"
                )
            time.sleep(0.05)
        return self.timeline[key]


def alive_count(gcs_address: str, addresses: set[str], token_file: Path | None) -> int | None:
    """How many of the hosts Ray's GCS counts alive; None while it does not answer (or, with
    rayctl, before its `up` made the token)."""
    try:
        nodes = list_ray_nodes(gcs_address, token_file=token_file)
    except RayUnreachable:
        return None
    return len({n.ip for n in nodes if n.alive and n.ip in addresses})


def check_all_alive(gcs_address: str, addresses: set[str], token_file: Path | None) -> None:
    count = alive_count(gcs_address, addresses, token_file)
    if count != len(addresses):
        raise RuntimeError(f"{count} of {len(addresses)} nodes alive in Ray at {gcs_address}")


def down_and_quiet(
    down: Callable[[], float], hosts: list[SSHHost], side: str
) -> tuple[float, float | None, dict[str, list[str]]]:
    """Time `down`, then watch the hosts: seconds from down's start until they were empty
    (None if they were not within QUIET_WAIT_S after it returned) and what had to be killed."""
    started = time.monotonic()
    down_s = down()
    left = wait_quiet(hosts, time.monotonic() + QUIET_WAIT_S)
    quiet_s = None if left else time.monotonic() - started
    killed = kill_leftovers(hosts)
    if killed:
        log(f"  {side} down left, {QUIET_WAIT_S:g} s after it returned: {describe(killed)}")
    return down_s, quiet_s, killed


# -- rayctl ------------------------------------------------------------------------------


def rayctl_config(name: str, net: HostNetwork) -> dict[str, Any]:
    head, *workers = net.hosts
    return {
        "cluster_name": name,
        "max_workers": WORKERS,
        "provider": {
            "type": "ssh",
            "head_ip": head.address,
            "worker_ips": [w.address for w in workers],
        },
        "auth": {"ssh_user": "root", "ssh_private_key": str(net.client_key)},
        # Ray's shape for on-prem hosts, written out: one type, resources detected by Ray.
        "available_node_types": {
            NODE_TYPE: {"resources": {}, "min_workers": WORKERS, "max_workers": WORKERS}
        },
        "head_node_type": NODE_TYPE,
        "rayctl": {"runtime": {"python": sys.executable}},  # the hosts share this venv
    }


def up_stages(lines: list[tuple[float, str]]) -> dict[str, float]:
    """When `rayctl up` printed its banner and when the last node of each kind entered
    each stage, in seconds since the command started."""
    stages: dict[str, float] = {}
    for at, line in lines:
        if line.startswith("Bringing up cluster"):
            stages["CLI started"] = at
        elif match := STAGE_LINE.match(line):
            kind, stage = match.groups()
            stages[f"{'head' if kind == 'head' else 'last worker'} {stage}"] = at
    return stages


def bench_rayctl(net: HostNetwork, tmp: Path) -> Measures:
    addresses = {h.address for h in net.hosts}
    gcs = f"{net.hosts[0].address}:{GCS_PORT}"
    config = tmp / "rayctl.yaml"
    name = f"rc-{secrets.token_hex(3)}"
    config.write_text(yaml.safe_dump(rayctl_config(name, net)))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"RAYCTL_HOME": str(tmp / "rayctl-home"), "NO_COLOR": "1"}
    token = ray_token_file(tmp / "rayctl-home", name)
    logs = tmp / "rayctl.log"

    def rayctl(*args: str, timeout_s: float) -> tuple[float, list[tuple[float, str]]]:
        return run([str(BIN / "rayctl"), *args], env=env, log_path=logs, timeout_s=timeout_s)

    downed = False
    try:
        started = time.monotonic()
        with GcsPoller(gcs, addresses, token, started) as poller:
            up_s, lines = rayctl("up", str(config), "--yes", timeout_s=UP_TIMEOUT_S)
            check_all_alive(gcs, addresses, token)  # it returns once all are up
            # The poller may sample the last node just after: all were alive at the return.
            alive_s = min(poller.wait_all(10), up_s)
        again_s, again_lines = rayctl("up", str(config), "--yes", timeout_s=UP_TIMEOUT_S)
        check_all_alive(gcs, addresses, token)

        def down() -> float:
            nonlocal downed
            downed = True
            return rayctl("down", str(config), "--yes", timeout_s=DOWN_TIMEOUT_S)[0]

        down_s, quiet_s, killed = down_and_quiet(down, net.hosts, "rayctl")
    finally:
        if not downed:
            with INTERRUPTS.cleanup(), contextlib.suppress(Exception):
                rayctl("down", str(config), "--yes", timeout_s=DOWN_TIMEOUT_S)
    return {
        "up": up_s,
        "all alive": alive_s,
        "up again": again_s,
        # "... nothing changed", or what it redid (rayctl's source changed meanwhile: its
        # hash is part of each node's runtime hash, so the nodes are set up again)
        "up again said": next(
            (line for _, line in reversed(again_lines) if line.startswith("Cluster ")), ""
        ),
        "down": down_s,
        "quiet": quiet_s,
        "left": killed,
        "timeline": {**up_stages(lines), **poller.timeline, "`rayctl up` returned": up_s},
    }


# -- Ray's `ray up` ----------------------------------------------------------------------


def ray_config(name: str, net: HostNetwork) -> dict[str, Any]:
    head, *workers = net.hosts
    return {
        "cluster_name": name,
        "provider": {
            "type": "local",
            "head_ip": head.address,
            "worker_ips": [w.address for w in workers],
        },
        "auth": {"ssh_user": "root", "ssh_private_key": str(net.client_key)},
        "setup_commands": [],
        "head_start_ray_commands": [
            "ray stop",
            "ray start --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml "
            "--disable-usage-stats",
        ],
        "worker_start_ray_commands": [
            "ray stop",
            "ray start --address=$RAY_HEAD_IP:6379 --disable-usage-stats",
        ],
    }


def ssh_control_dir(cluster_name: str) -> Path:
    """Where Ray's command runner keeps its SSH control sockets for a cluster
    (ray.autoscaler._private.command_runner.SSHOptions)."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    return Path(f"/tmp/ray_ssh_{digest(getuser())}/{digest(cluster_name)}")


def close_ssh_masters(control_dir: Path) -> None:
    """Ray's SSH connections stay open 10 s after use (ControlPersist): close them, and the
    masters the head's autoscaler left in the same directory (the filesystem is shared)."""
    if not control_dir.is_dir():
        return
    for socket_path in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "ray-control"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    shutil.rmtree(control_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # Ray's parent directory, if no one else uses it
        control_dir.parent.rmdir()


def bench_ray(net: HostNetwork, tmp: Path) -> Measures:
    head = net.hosts[0]
    addresses = {h.address for h in net.hosts}
    gcs = f"{head.address}:{GCS_PORT}"
    name = f"ray-{secrets.token_hex(3)}"
    config = tmp / "ray.yaml"
    config.write_text(yaml.safe_dump(ray_config(name, net)))
    (tmp / "tmpdir").mkdir()
    env = {
        **os.environ,
        "RAY_UP_enable_autoscaler_v2": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TMPDIR": str(tmp / "tmpdir"),  # the local provider's state and the config cache
    }
    logs = tmp / "ray.log"

    def ray(*args: str, timeout_s: float) -> float:
        return run([str(BIN / "ray"), *args], env=env, log_path=logs, timeout_s=timeout_s)[0]

    try:
        started = time.monotonic()
        with GcsPoller(gcs, addresses, None, started) as poller:
            up_s = ray("up", "-y", "--disable-usage-stats", str(config), timeout_s=UP_TIMEOUT_S)
            alive_s = poller.wait_all(UP_TIMEOUT_S)
        check_all_alive(gcs, addresses, None)
        down_s, quiet_s, killed = down_and_quiet(
            lambda: ray("down", "-y", str(config), timeout_s=DOWN_TIMEOUT_S), net.hosts, "ray"
        )
    finally:
        with INTERRUPTS.cleanup():
            kill_leftovers(net.hosts)  # after a failure: whatever Ray started
            close_ssh_masters(ssh_control_dir(name))
            for bootstrap in ("ray_bootstrap_config.yaml", "ray_bootstrap_key.pem"):
                (head.home / bootstrap).unlink(missing_ok=True)
    return {
        "up": up_s,
        "all alive": alive_s,
        "down": down_s,
        "quiet": quiet_s,
        "left": killed,
        "timeline": {**poller.timeline, "`ray up` returned": up_s},
    }


# -- rounds and report -------------------------------------------------------------------

SIDES: dict[str, Callable[[HostNetwork, Path], Measures]] = {
    "rayctl": bench_rayctl,
    "ray": bench_ray,
}


def run_rounds(rounds: int, keep_logs: Path) -> dict[str, list[Measures]]:
    results: dict[str, list[Measures]] = {side: [] for side in SIDES}
    log(f"creating {NODES} sshd hosts")
    with HostNetwork(NODES) as net:
        log(
            f"hosts: head {net.hosts[0].address}, workers "
            f"{', '.join(h.address for h in net.hosts[1:])}; logs in {keep_logs}"
        )
        for i in range(rounds):
            order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
            for side in order:
                if left := kill_leftovers(net.hosts):
                    raise RuntimeError(f"hosts not empty before {side}: {describe(left)}")
                tmp = Path(tempfile.mkdtemp(prefix=f"onprem-{side}-", dir=keep_logs))
                m = SIDES[side](net, tmp)
                results[side].append(m)
                again = f", up again {m['up again']:.2f} s" if "up again" in m else ""
                quiet = "never" if m["quiet"] is None else f"{m['quiet']:.2f} s"
                log(
                    f"round {i + 1}/{rounds} {side:6}: up {m['up']:.2f} s, all alive "
                    f"{m['all alive']:.2f} s{again}, down {m['down']:.2f} s, quiet {quiet}"
                )
                for sub in ("rayctl-home", "tmpdir"):  # state; the logs stay
                    shutil.rmtree(tmp / sub, ignore_errors=True)
    return results


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(results: dict[str, list[Measures]]) -> dict[str, Any]:
    med: dict[str, dict[str, Any]] = {}
    for side, runs in results.items():
        keys = [k for k in runs[0] if k not in ("left", "timeline", "up again said")]
        med[side] = {k: median([r[k] for r in runs]) for k in keys}
        timeline_keys = dict.fromkeys(k for r in runs for k in r["timeline"])
        med[side]["timeline"] = {
            k: median([r["timeline"].get(k) for r in runs]) for k in timeline_keys
        }
    rc, ray = med["rayctl"], med["ray"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    compared = {
        # rayctl's up returns with every node ready; Ray's nodes come up after it returns
        "up until all alive": (rc["up"], ray["all alive"]),
        "up until the command returns": (rc["up"], ray["up"]),
        "up again, unchanged cluster": (rc["up again"], None),
        "down until the command returns": (rc["down"], ray["down"]),
        "down until the hosts are quiet": (rc["quiet"], ray["quiet"]),
    }
    up_ratio = ratio(rc["up"], ray["all alive"])
    return {
        "nodes": NODES,
        "rounds": len(results["rayctl"]),
        "compared": {
            k: {"rayctl_s": a, "ray_s": b, "ratio": ratio(a, b)} for k, (a, b) in compared.items()
        },
        "targets": {
            "up_ratio": {
                "target": TARGET_UP_RATIO,
                "measured": up_ratio,
                "met": up_ratio is not None and up_ratio <= TARGET_UP_RATIO,
            },
            "repeated_up_s": {
                "target": TARGET_REPEAT_S,
                "measured": rc["up again"],
                "met": rc["up again"] < TARGET_REPEAT_S,
            },
        },
        "left_after_down": {side: [r["left"] for r in runs] for side, runs in results.items()},
        "up_again_said": [r["up again said"] for r in results["rayctl"]],
        "median": med,
        "runs": results,
    }


def seconds(value: float | None, width: int) -> str:
    return f"{value:{width - 1}.2f}s" if value is not None else f"{'never':>{width}}"


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"rayctl vs Ray's `ray up` (local provider, autoscaler v1): head + {WORKERS} workers "
        f"on {NODES} sshd hosts, median of {summary['rounds']} round(s)\n"
    )
    print(f"{'':34}{'rayctl':>9}{'ray':>9}{'ratio':>8}")
    for label, c in summary["compared"].items():
        ray = seconds(c["ray_s"], 9) if c["ray_s"] is not None or "quiet" in label else "-".rjust(9)
        ratio = f"{c['ratio']:7.2f}x" if c["ratio"] is not None else "-".rjust(8)
        print(f"{label:34}{seconds(c['rayctl_s'], 9)}{ray}{ratio}")
    up, repeat = summary["targets"]["up_ratio"], summary["targets"]["repeated_up_s"]
    print("\ntargets:")
    print(
        f"  rayctl up in at most half the time of `ray up` (until all {NODES} alive): "
        f"{up['measured']:.2f}x, {'met' if up['met'] else 'NOT met'}"
    )
    print(
        f"  repeated rayctl up under {TARGET_REPEAT_S:g} s: {repeat['measured']:.2f} s, "
        f"{'met' if repeat['met'] else 'NOT met'}"
    )
    said = summary["up_again_said"]
    unchanged = sum("nothing changed" in line for line in said)
    print(f"  repeated rayctl up found nothing to change in {unchanged} of {len(said)} round(s)")
    for line in dict.fromkeys(line for line in said if "nothing changed" not in line):
        print(f"    otherwise: {line}")
    print(f"\nleft on the hosts {QUIET_WAIT_S:g} s after `down` returned (then killed by PID):")
    for side, rounds in summary["left_after_down"].items():
        dirty = [r for r in rounds if r]
        what = "; ".join(dict.fromkeys(describe(r) for r in dirty)) or "nothing"
        print(f"  {side:7}{len(dirty)} of {len(rounds)} round(s): {what}")
    for side, since in (("rayctl", "`rayctl up` started"), ("ray", "`ray up` started")):
        print(f"\n{side} timeline, median seconds since {since}:")
        timeline = summary["median"][side]["timeline"]
        for key, value in sorted(timeline.items(), key=itemgetter(1)):
            print(f"  {key:34}{value:6.2f}")


def preflight() -> None:
    missing = [
        why
        for why, lacking in (
            ("root (the hosts are network namespaces)", os.geteuid() != 0),
            (f"{SSHD} (apt-get install openssh-server)", not Path(SSHD).exists()),
            *(
                (f"`{tool}` on the PATH", shutil.which(tool) is None)
                for tool in ("ip", "nsenter", "ssh", "rsync")
            ),
        )
        if lacking
    ]
    if missing:
        sys.exit(f"onprem_up.py needs {', '.join(missing)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    preflight()
    INTERRUPTS.install()
    keep_logs = Path(tempfile.mkdtemp(prefix="onprem-up-bench-"))
    started = time.monotonic()
    try:
        summary = summarize(run_rounds(options.rounds, keep_logs))
    except KeyboardInterrupt:
        log(f"interrupted; the hosts are removed (logs in {keep_logs})")
        sys.exit(130)
    summary["wall_s"] = time.monotonic() - started
    log(f"done in {summary['wall_s']:.0f} s")
    shutil.rmtree(keep_logs, ignore_errors=True)
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
