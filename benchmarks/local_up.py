"""Benchmark: rayctl's local cluster against the same Ray nodes started by hand.

For a head + 3 workers (1 CPU each), each on its own 127.0.0.x address, one run measures
side by side:

  rayctl    `rayctl up CONFIG --yes` until it returns (all 4 nodes registered in Ray),
            then `rayctl down CONFIG --yes`;
  bare Ray  the head's `ray start --head --block`, then, once its GCS answers, the 3
            workers' `ray start --block` in parallel (each in a session of its own), until
            Ray counts 4 alive nodes; then SIGTERM to each, wait for it to exit, and
            SIGTERM (then SIGKILL) whatever is left of its process group, as `rayctl down`
            does: Ray sometimes leaves its agents behind.

Rounds alternate which side goes first. It prints the medians, the ratios, rayctl's overhead
against bare Ray (target: under 30%) and each side's timeline: when `rayctl up` reached each
bootstrap stage, when bare Ray's GCS answered and counted 1, 2, ... nodes. Progress goes to
stderr. It only ever signals process groups it created, and cleans up on failure and Ctrl-C.

Run from the repository root:

    .venv/bin/python benchmarks/local_up.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from common import log, wait_for
from ray.autoscaler.v2.sdk import get_cluster_status

from rayctl.providers.local import loopback
from rayctl.runtime.detached import STOP_GRACE_S

BIN = Path(sys.executable).parent
WORKERS = 3
TARGET_OVERHEAD_PCT = 30.0
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default range for worker processes
# `[  1.2s] worker-1a2b3c4d (worker, ray.worker.cpu): starting-ray`, one per stage change
STAGE_LINE = re.compile(r"^\[\s*[\d.]+s\] \S+ \((\w+), [^)]*\): ([\w-]+)$")

Measures = dict[str, float]
TOTALS = ("start", "stop", "groups killed")  # the measures that are not timeline points


def alive_nodes(gcs_address: str) -> int | None:
    """Nodes Ray counts alive, or None while its GCS does not answer."""
    host, port = gcs_address.rsplit(":", 1)
    try:  # without a listener, Ray's GCS client waits ~40 s whatever the timeout
        socket.create_connection((host, int(port)), timeout=1).close()
        status = get_cluster_status(gcs_address, timeout=5)
    except Exception:  # GCS client errors have no common base class
        return None
    return len(status.active_nodes) + len(status.idle_nodes)


# -- rayctl ------------------------------------------------------------------------------

CONFIG = """\
cluster_name: {name}
max_workers: {workers}
provider: {{type: local}}
available_node_types:
  ray.head.default: {{resources: {{CPU: 1}}}}
  ray.worker.cpu: {{resources: {{CPU: 1}}, min_workers: {workers}, max_workers: {workers}}}
head_node_type: ray.head.default
"""


def run_rayctl(*args: str, env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Run `rayctl ARGS`; its duration and its output lines, each with when it arrived."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "rayctl"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        lines = [(time.monotonic() - started, line.rstrip()) for line in proc.stdout]
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        time.sleep(3)  # let start scripts it launched record their PIDs, for `rayctl down`
        raise
    elapsed = time.monotonic() - started
    if code:
        output = "\n".join(line for _, line in lines[-30:])
        raise RuntimeError(f"rayctl {' '.join(args)} exited with {code}:\n{output}")
    return elapsed, lines


def up_stages(lines: list[tuple[float, str]]) -> Measures:
    """When `rayctl up` printed its banner and when the last node of each kind entered
    each stage, in seconds since the command started."""
    stages: Measures = {}
    for at, line in lines:
        if line.startswith("Bringing up cluster"):
            stages["CLI started"] = at
        elif match := STAGE_LINE.match(line):
            kind, stage = match.groups()
            stages[f"{'head' if kind == 'head' else 'last worker'} {stage}"] = at
    return stages


@contextmanager
def rayctl_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A config for a fresh cluster and rayctl's environment; `rayctl down` on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="rayctl-bench-"))
    config = tmp / "cluster.yaml"
    config.write_text(CONFIG.format(name=f"bench-{secrets.token_hex(4)}", workers=WORKERS))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"RAYCTL_HOME": str(tmp / "home"), "NO_COLOR": "1"}
    try:
        yield str(config), env
    finally:
        try:
            run_rayctl("down", str(config), "--yes", env=env)  # idempotent
            shutil.rmtree(tmp, ignore_errors=True)
        except Exception as exc:
            log(f"rayctl down failed; its state is left in {tmp}: {exc}")


def bench_rayctl() -> Measures:
    with rayctl_cluster() as (config, env):
        up_s, lines = run_rayctl("up", config, "--yes", env=env)
        down_s, _ = run_rayctl("down", config, "--yes", env=env)
    return {"start": up_s, "stop": down_s, **up_stages(lines)}


# -- bare Ray ----------------------------------------------------------------------------


@dataclass
class BareNode:
    ip: str
    home: Path  # its Ray temp dir, its log and the owner of its loopback lease
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    gone: bool = False  # its process group is empty: never signal that PGID again

    def launch(self) -> None:
        with open(self.home / "ray.log", "wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "ray"), "start", "--block", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so its PID is the PGID of all its processes
            )

    def group_alive(self) -> bool:
        if self.proc is None or self.gone:
            return False
        self.proc.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            self.gone = True
        return not self.gone

    def signal_group(self, sig: signal.Signals) -> None:
        if self.group_alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)

    def check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.home / "ray.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"ray start on {self.ip} exited with {self.proc.returncode}:\n{tail}"
            )


@dataclass
class BareCluster:
    root: Path
    nodes: list[BareNode] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    gcs_address: str = ""

    def free_port(self) -> int:
        """A port nothing listens on, outside Ray's worker range and not used here yet."""
        while True:
            with socket.socket() as s:
                s.bind(("", 0))
                port = s.getsockname()[1]
            if port not in RAY_WORKER_PORTS and port not in self.ports:
                self.ports.add(port)
                return port

    def add_node(self) -> BareNode:
        """The head first, then workers: a leased address, ports and `ray start` flags."""
        home = self.root / f"n{len(self.nodes)}"
        home.mkdir()
        ip = loopback.lease(home)
        args = [
            f"--node-ip-address={ip}",
            "--num-cpus=1",
            "--disable-usage-stats",
            f"--temp-dir={home}",
            f"--dashboard-agent-listen-port={self.free_port()}",
        ]
        if not self.nodes:
            port = self.free_port()
            self.gcs_address = f"{ip}:{port}"
            args += [
                "--head",
                "--no-monitor",
                f"--port={port}",
                f"--dashboard-host={ip}",
                f"--dashboard-port={self.free_port()}",
                f"--ray-client-server-port={self.free_port()}",
            ]
        else:
            args.append(f"--address={self.gcs_address}")
        node = BareNode(ip, home, args)
        self.nodes.append(node)
        return node

    def alive(self) -> int | None:
        for node in self.nodes:
            node.check_running()
        return alive_nodes(self.gcs_address)

    def left(self, timeout_s: float = 0) -> list[BareNode]:
        """The nodes whose process group is still there after up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := [n for n in self.nodes if n.group_alive()]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def stop(self) -> int:
        """What `rayctl down` does, by hand: SIGTERM each node's `ray start` and wait for it
        to exit; Ray sometimes leaves agents behind, so then SIGTERM (and after 3 s SIGKILL)
        each group still there. Returns how many groups needed that."""
        leaders = [n.proc for n in self.left() if n.proc is not None]
        for proc in leaders:
            with suppress(ProcessLookupError):  # a leader that exited early
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in leaders:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        left = self.left()
        escalated = len(left)
        for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            for node in left:
                node.signal_group(sig)
            left = self.left(wait_s)
        if left:
            raise RuntimeError(f"bare Ray nodes still there after SIGKILL: {left}")
        return escalated

    def destroy(self) -> None:
        """Kill what is left of the groups this cluster started, free its addresses."""
        for node in self.nodes:
            node.signal_group(signal.SIGKILL)
        self.left(10)
        for node in self.nodes:
            loopback.release(node.ip, node.home)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def bare_cluster() -> Iterator[BareCluster]:
    # Short: Ray's socket paths under the temp dir must stay under 108 bytes.
    cluster = BareCluster(Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp")))
    try:
        yield cluster
    finally:
        cluster.destroy()


def bench_bare() -> Measures:
    with bare_cluster() as cluster:
        head, *workers = [cluster.add_node() for _ in range(1 + WORKERS)]
        timeline: Measures = {}  # when the GCS first answered, then first counted n nodes

        def alive(n: int) -> bool:
            count = cluster.alive()
            if count is not None:
                label = "GCS answers" if count == 0 else f"{count} node(s) alive"
                timeline.setdefault(label, time.monotonic() - started)
            return count is not None and count >= n

        started = time.monotonic()
        head.launch()
        wait_for("the head's GCS", lambda: alive(0))
        for worker in workers:
            worker.launch()
        wait_for("all nodes to be alive", lambda: alive(1 + WORKERS))
        start_s = time.monotonic() - started
        stopping = time.monotonic()
        escalated = cluster.stop()
        stop_s = time.monotonic() - stopping
        return {"start": start_s, "stop": stop_s, "groups killed": escalated, **timeline}


# -- report ------------------------------------------------------------------------------

SIDES: dict[str, Callable[[], Measures]] = {"rayctl": bench_rayctl, "bare": bench_bare}


def run_rounds(rounds: int) -> dict[str, list[Measures]]:
    results: dict[str, list[Measures]] = {side: [] for side in SIDES}
    for i in range(rounds):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for side in order:
            measures = SIDES[side]()
            results[side].append(measures)
            log(
                f"round {i + 1}/{rounds} {side:6}: start {measures['start']:.2f} s, "
                f"stop {measures['stop']:.2f} s"
            )
    return results


def medians(runs: list[Measures]) -> Measures:
    keys = dict.fromkeys(k for run in runs for k in run)  # first-seen order
    return {k: statistics.median(run[k] for run in runs if k in run) for k in keys}


def summarize(results: dict[str, list[Measures]]) -> dict[str, Any]:
    median = {side: medians(runs) for side, runs in results.items()}
    compared = {}
    for measure in ("start", "stop"):
        rayctl, bare = median["rayctl"][measure], median["bare"][measure]
        overhead = (rayctl - bare) / bare * 100
        compared[measure] = {
            "rayctl_s": rayctl,
            "bare_s": bare,
            "ratio": rayctl / bare,
            "overhead_pct": overhead,
            "target_met": overhead < TARGET_OVERHEAD_PCT,
        }
    return {
        "nodes": 1 + WORKERS,
        "rounds": len(results["rayctl"]),
        "target_overhead_pct": TARGET_OVERHEAD_PCT,
        "compared": compared,
        "median": median,
        "runs": results,
    }


def print_table(summary: dict[str, Any]) -> None:
    compared, median = summary["compared"], summary["median"]
    print(
        f"rayctl vs bare Ray: head + {WORKERS} workers, 1 CPU each, "
        f"median of {summary['rounds']} round(s)\n"
    )
    print(f"{'':24}{'rayctl':>9}{'bare Ray':>10}{'ratio':>8}{'overhead':>10}")
    for measure, label in (("start", "up / start"), ("stop", "down / stop")):
        c = compared[measure]
        print(
            f"{label:24}{c['rayctl_s']:8.2f}s{c['bare_s']:9.2f}s{c['ratio']:7.2f}x"
            f"{c['overhead_pct']:+9.0f}%"
        )
    verdicts = ", ".join(
        f"{m} {'met' if c['target_met'] else 'NOT met'}" for m, c in compared.items()
    )
    print(f"\ntarget: overhead under {TARGET_OVERHEAD_PCT:g}%: {verdicts}")
    killed = [run["groups killed"] for run in summary["runs"]["bare"]]
    if any(killed):
        print(
            f"bare stop: in {sum(map(bool, killed))} of {len(killed)} round(s) Ray left "
            "processes behind after its `ray start` exited; their groups were signalled"
        )
    for side, since in (("rayctl", "`rayctl up` started"), ("bare", "the head's `ray start`")):
        print(f"\n{side} timeline, median seconds since {since}:")
        timeline = {k: v for k, v in median[side].items() if k not in TOTALS}
        for key, value in sorted(
            {**timeline, "done": median[side]["start"]}.items(), key=itemgetter(1)
        ):
            print(f"  {key:34}{value:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    # A SIGTERM unwinds like Ctrl-C, through the `finally` blocks that clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        summary = summarize(run_rounds(options.rounds))
    except KeyboardInterrupt:
        sys.exit(130)  # after the clean-up in the `finally` blocks
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
