"""Benchmark: how fast the autoscaler reacts, rayctl's against Ray's own, side by side.

Every round starts a fresh cluster of each kind, with the same shapes: a head with 0 CPUs and
one worker type with 1 CPU (min_workers 0, max_workers 2), upscaling_speed 1, the same idle
timeout (default 6 s = idle_timeout_minutes 0.1), and autoscaler ticks of 1 s on both sides:

  rayctl  `rayctl up` on the local provider (each node a `ray start --block` on its own
          127.0.0.x); its monitor on the head ticks every RAYCTL_MONITOR_TICK_S (1 s).
  ray-v2  Ray's autoscaler v2 (the default of `ray up` since Ray 2.50) with Ray's fake
  ray-v1  multi-node provider, and Ray's autoscaler v1 (the default of `ray start
          --autoscaling-config` and of `ray.cluster_utils.AutoscalingCluster`). The head is
          started as AutoscalingCluster.start() starts it (same generated config, same
          environment: RAY_FAKE_CLUSTER=1, AUTOSCALER_UPDATE_INTERVAL_S=1, and for v2
          RAY_enable_autoscaler_v2=1 with the fixed fake head id); the autoscaler then launches
          each fake node in its own process as a local raylet, without `ray start`.

AutoscalingCluster itself is not used to start or stop: both its start() and shutdown() run
`ray stop --force`, which kills every Ray process on the machine, other people's included.
So the head gets its own temp dir, ports and leased loopback address and runs in a session of
its own; it is stopped by SIGTERM to its `ray start` and then its process group, nothing else.
The fake provider's workers report 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) instead of
the machine's outward address. The provider type is `external` naming Ray's
FakeMultiNodeProvider class when this Ray wheel lacks the fake provider's default config
(example.yaml), which autoscaler v2 insists on reading; the class is the same.

A round: a driver (a subprocess on this machine) connects to the head, waits --settle s, then
submits one task that needs {CPU: 1}, which only a not-yet-running worker has. Measured:

  scale-up, seconds from the submission to
    decision        the launch decision: rayctl's "launch" event in `rayctl status --json`
                    (autoscaler.events); Ray's monitor.log line ("Adding N node(s)" in v2,
                    "StandardAutoscaler: Queue N new nodes for launch" in v1);
    raylet started  the new node's raylet process started (/proc start time);
    alive           the new node first seen ALIVE in Ray's GCS (polled every 0.1 s);
    finished        the task's result back in the driver.
  scale-down, seconds from the task's end to
    terminate       the terminate decision logged (rayctl writes its event after the node is
                    stopped; Ray logs it before);
    gone            the worker seen DEAD in Ray's GCS (polled every 0.1 s); "overhead" is that
                    minus the idle timeout;
    raylet exited   the worker's raylet process gone;
    unlisted        (rayctl only) the worker gone from `rayctl status`'s node list, read as
                    `rayctl status` reads it: from the local provider's state.

Issue 10's targets are printed too: submit -> launch decided under 0.3 s (median) and under
half of each Ray autoscaler's; launch decided -> worker alive within 1.1x of the same
worker's own `ray start`, from its spawn to the worker alive in GCS, in the same round (a
rayctl node is a real `ray start`: that is the physical limit here; Ray's fake provider,
which starts raylets inside its autoscaler, is shown beside it).

Rounds rotate which side goes first. It prints each side's medians, the ratio rayctl / Ray
for each measure against each Ray autoscaler, the issue's target (rayctl under half of Ray's
time), the scale-up cut into phases (for rayctl also: its monitor's bootstrap stages and its
`ray start`, from the monitor's log and /proc) and each side's timeline. Progress goes to
stderr. Cleanup runs on failure, Ctrl-C and SIGTERM (a signal during a cleanup waits for its
end): `rayctl down` for rayctl's clusters, the head's process group for Ray's; at the end it
lists (and kills, by PID) any process left with this run's markers: a variable of this run
(or RAYCTL_CLUSTER=<a cluster name of this run>) in its environment, a Ray temp dir of this
run in its command line, or the process group of a Ray head of this run. It never runs `ray
stop` and never signals by name.

Run from the repository root (the default run takes about 4 minutes on 2 cores):

    .venv/bin/python benchmarks/reaction.py [--rounds 3] [--json] [--ray v2,v1]
        [--idle-timeout 6] [--settle 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import ray
import ray.autoscaler._private.fake_multi_node as fake_multi_node
from common import INTERRUPTS, log, wait_for
from ray._raylet import Config, GcsClient
from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID
from ray.core.generated.gcs_pb2 import GcsNodeInfo

from rayctl.paths import ray_token_file
from rayctl.providers.local import loopback
from rayctl.providers.local.instances import LocalProvider
from rayctl.providers.registry import load_config, make_provider

BIN = Path(sys.executable).parent
HEAD_TYPE = "ray.head.default"
WORKER_TYPE = "ray.worker.cpu"
MAX_WORKERS = 2
POLL_S = 0.1
TIMEOUT_S = 180.0
TARGET_RATIO = 0.5
DECISION_TARGET_S = 0.3
BARE_START_RATIO = 1.1
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default range for worker processes
ALIVE = GcsNodeInfo.GcsNodeState.ALIVE

Measures = dict[str, float]
# The measures compared side by side: (phase, measure).
COMPARED = (
    ("up", "decision"),
    ("up", "alive"),
    ("up", "finished"),
    ("down", "gone"),
    ("down", "overhead"),
)


def free_port(taken: set[int]) -> int:
    """A TCP port nothing listens on, outside Ray's worker range, not in `taken` (added)."""
    while True:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        if port not in RAY_WORKER_PORTS and port not in taken:
            taken.add(port)
            return port


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


# -- processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    pgid: int
    started: float  # epoch seconds, 10 ms resolution
    cmdline: str


# /proc/PID/stat counts start times in clock ticks since boot (CLOCK_BOOTTIME); btime in
# /proc/stat is whole seconds, too coarse, so the boot time comes from the two clocks.
BOOT_TIME = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
TICKS = os.sysconf("SC_CLK_TCK")


def read_proc(pid: int) -> Proc | None:
    """A live (non-zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp ... starttime is the 20th
    if fields[0] == "Z":
        return None
    started = BOOT_TIME + int(fields[19]) / TICKS
    return Proc(pid, int(fields[2]), started, cmdline.replace(b"\0", b" ").decode(errors="replace"))


def processes() -> Iterator[Proc]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            yield proc


def environ_has(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def still_running(proc: Proc) -> bool:
    """The same process (not a reused PID) is still there."""
    current = read_proc(proc.pid)
    return current is not None and current.started == proc.started


@dataclass
class Owned:
    """This run's markers, to find whatever it may have left behind."""

    # In the environment of every process this run starts (and of their children).
    run_marker: str = f"RAYCTL_REACTION_RUN_{secrets.token_hex(4)}"
    cluster_names: set[str] = field(default_factory=set)  # rayctl: RAYCTL_CLUSTER=<name>
    ray_roots: set[str] = field(default_factory=set)  # Ray heads' temp dirs
    ray_groups: set[int] = field(default_factory=set)  # Ray heads' process groups

    def owns(self, proc: Proc) -> bool:
        return (
            environ_has(proc.pid, f"{self.run_marker}=1")
            or proc.pgid in self.ray_groups
            or any(root in proc.cmdline for root in self.ray_roots)
            or any(environ_has(proc.pid, f"RAYCTL_CLUSTER={n}") for n in self.cluster_names)
        )

    def leftovers(self) -> list[Proc]:
        me = os.getpid()
        return [p for p in processes() if p.pid != me and self.owns(p)]


OWNED = Owned()


def kill_pids(procs: list[Proc]) -> None:
    for proc in procs:
        if still_running(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


# -- Ray's view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RayWorker:
    node_id: str  # Ray's node id (hex)
    instance_id: str  # the provider's id for it
    alive: bool


def ray_workers(gcs: GcsClient) -> dict[str, RayWorker]:
    """Every worker node (not the head) the GCS knows, alive or dead, by node id."""
    infos = gcs.get_all_node_info(timeout=5)
    return {
        node_id.hex(): RayWorker(node_id.hex(), info.instance_id, info.state == ALIVE)
        for node_id, info in infos.items()
        if not info.is_head_node
    }


def head_alive(gcs: GcsClient) -> bool:
    infos = gcs.get_all_node_info(timeout=5).values()
    return any(i.is_head_node and i.state == ALIVE for i in infos)


def log_time(line: str) -> float:
    """The epoch time of a Ray log line (`2026-01-01 12:00:00,123\\tINFO ...`, local time)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


# -- the clusters -------------------------------------------------------------------------


class Cluster(Protocol):
    side: str
    gcs_address: str
    head_ip: str
    gcs: GcsClient

    def owns(self, proc: Proc) -> bool:
        """A process of this cluster."""

    def lists(self, instance_id: str) -> bool | None:
        """Whether the launcher's node list has this worker (None: no such list)."""

    def decisions(self, worker: RayWorker, since: float) -> Measures:
        """Epoch times of the launch and terminate decisions for `worker`, and of steps in
        between that the autoscaler logs, by name."""


def config_shape(idle_timeout_s: float) -> dict[str, Any]:
    """The cluster YAML keys both sides share."""
    return {
        "max_workers": MAX_WORKERS,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_s / 60,
        "head_node_type": HEAD_TYPE,
    }


# rayctl ----------------------------------------------------------------------------------


def run_rayctl(*args: str, env: dict[str, str], timeout_s: float = TIMEOUT_S) -> str:
    """Run `rayctl ARGS`; its stdout. Raises with its output if it fails."""
    proc = subprocess.Popen(
        [str(BIN / "rayctl"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        time.sleep(3)  # let start scripts it launched record their PIDs, for `rayctl down`
        raise
    if proc.returncode:
        tail = "\n".join((out + err).splitlines()[-30:])
        raise RuntimeError(f"rayctl {' '.join(args)} exited with {proc.returncode}:\n{tail}")
    return out


@dataclass
class RayctlCluster:
    name: str
    config: Path
    env: dict[str, str]
    provider: LocalProvider
    gcs_address: str = ""
    head_ip: str = ""
    head_id: str = ""
    gcs: Any = None
    side: str = "rayctl"

    def status(self) -> dict[str, Any]:
        return json.loads(run_rayctl("status", str(self.config), "--json", env=self.env))

    def owns(self, proc: Proc) -> bool:
        return environ_has(proc.pid, f"RAYCTL_CLUSTER={self.name}")

    def lists(self, instance_id: str) -> bool | None:
        return any(n.id == instance_id for n in self.provider.list_nodes())

    def decisions(self, worker: RayWorker, since: float) -> Measures:
        events = self.status()["autoscaler"]["events"]
        times: Measures = {}
        for event in events:
            if event["action"] == "launch" and event["at"] >= since - 1:
                times.setdefault("launch", event["at"])
            elif event["what"] == worker.instance_id:
                times.setdefault(event["action"], event["at"])  # ready, terminate
        for stage, at in self.bootstrap_stages(worker.instance_id).items():
            times[f"stage {stage}"] = at
        return times

    def bootstrap_stages(self, instance_id: str) -> Measures:
        """When the monitor's bootstrap of the worker entered each stage (its JSON log)."""
        out_log = self.provider.node_home(self.head_id) / ".rayctl/procs/monitor/out.log"
        stages: Measures = {}
        for line in out_log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("node_id") == instance_id and "stage" in entry:
                    stages.setdefault(entry["stage"], entry["ts"])
        return stages


RAYCTL_TYPES = {
    HEAD_TYPE: {"resources": {"CPU": 0}},
    WORKER_TYPE: {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": MAX_WORKERS},
}


@contextlib.contextmanager
def rayctl_cluster(idle_timeout_s: float) -> Iterator[RayctlCluster]:
    """`rayctl up` a fresh cluster in a rayctl home of its own; `rayctl down` on the way out."""
    name = f"react-{secrets.token_hex(4)}"
    OWNED.cluster_names.add(name)
    tmp = Path(tempfile.mkdtemp(prefix="rayctl-react-"))
    config = tmp / "cluster.yaml"
    document = {
        "cluster_name": name,
        **config_shape(idle_timeout_s),
        "provider": {"type": "local"},
        "available_node_types": RAYCTL_TYPES,
    }
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"RAYCTL_HOME": str(tmp / "home"), "NO_COLOR": "1", OWNED.run_marker: "1"}
    cluster = None
    try:
        config.write_text(json.dumps(document, indent=1))  # JSON is YAML
        provider = make_provider(load_config(config).config, home=tmp / "home")
        assert isinstance(provider, LocalProvider)
        cluster = RayctlCluster(name, config, env, provider)
        token = ray_token_file(tmp / "home", name)  # `up` keeps a token it finds
        token.parent.mkdir(parents=True)
        shutil.copy(os.environ["RAY_AUTH_TOKEN_PATH"], token)  # with its mode, 0600
        run_rayctl("up", str(config), "--yes", env=env)
        status = cluster.status()
        cluster.gcs_address, cluster.head_ip = status["gcs_address"], status["head_ip"]
        cluster.head_id = next(n["id"] for n in status["nodes"] if n["kind"] == "head")
        cluster.gcs = GcsClient(address=cluster.gcs_address)
        # The monitor has ticked once: it has written its status document.
        wait_for("rayctl's monitor", lambda: bool(cluster.status()["autoscaler"]))
        yield cluster
    finally:
        with INTERRUPTS.cleanup():
            if cluster is not None:
                cluster.gcs = None
                stop_rayctl(cluster.name, config, env)
            shutil.rmtree(tmp, ignore_errors=True)


def stop_rayctl(name: str, config: Path, env: dict[str, str]) -> None:
    """`rayctl down`, then up to 10 s for the cluster's processes to exit."""
    try:
        run_rayctl("down", str(config), "--yes", env=env)  # idempotent
    except Exception as exc:
        log(f"rayctl down failed for cluster {name}: {exc}")
        return
    marker = f"RAYCTL_CLUSTER={name}"
    with contextlib.suppress(TimeoutError):
        wait_for("", lambda: not any(environ_has(p.pid, marker) for p in processes()), 10)


# Ray's fake multi-node cluster ------------------------------------------------------------

# What autoscaler v2 (in monitor.log, from its event logger) and v1 log for the decisions.
RAY_DECISIONS = {
    2: {
        "launch": re.compile(r"event_logger\.py:\d+ -- Adding \d+ node\(s\) of type"),
        "provider launching": re.compile(r"-- Launching \d+ nodes of type"),
        "terminate": re.compile(r"event_logger\.py:\d+ -- Removing \d+ nodes of type"),
    },
    1: {
        "launch": re.compile(r"StandardAutoscaler: Queue \d+ new nodes for launch"),
        "terminate": re.compile(r"StandardAutoscaler: Terminating the node with id"),
    },
}
# A line each autoscaler logs once it runs its update loop.
RAY_RUNNING = {1: "Autoscaler status", 2: "Using Autoscaling Config"}


@dataclass
class FakeRayCluster:
    version: int
    root: Path  # the head's --temp-dir: its session, logs and the fake nodes' sockets
    head_ip: str
    gcs_address: str
    head: subprocess.Popen[bytes] | None = None
    gcs: Any = None

    @property
    def side(self) -> str:
        return f"ray-v{self.version}"

    @property
    def monitor_log(self) -> Path:
        return self.root / "session_latest" / "logs" / "monitor.log"

    def owns(self, proc: Proc) -> bool:
        return self.head is not None and proc.pgid == self.head.pid

    def lists(self, instance_id: str) -> bool | None:
        return None  # the provider's node list lives inside Ray's monitor process

    def decisions(self, worker: RayWorker, since: float) -> Measures:
        times: Measures = {}
        for line in self.monitor_log.read_text(errors="replace").splitlines():
            for name, pattern in RAY_DECISIONS[self.version].items():
                if pattern.search(line) and (at := log_time(line)) >= since - 1:
                    times.setdefault(name, at)
        return times

    def autoscaler_running(self) -> bool:
        return self.monitor_log.exists() and RAY_RUNNING[self.version] in (
            self.monitor_log.read_text(errors="replace")
        )


def fake_provider_config(gcs_address: str, version: int) -> dict[str, Any]:
    provider: dict[str, Any] = {
        "type": "fake_multinode",
        "use_node_id_as_ip": True,
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
        "gcs_address": gcs_address,  # else the fake nodes look for the GCS on port 6379
    }
    if not (Path(fake_multi_node.__file__).parent / "example.yaml").exists():
        provider |= {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
        }
    if version == 2:  # as AutoscalingCluster(autoscaler_v2=True) sets them
        provider |= {"launch_multiple": True, "head_node_id": FAKE_HEAD_NODE_ID}
    return provider


COMMAND_KEYS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def fake_cluster_config(gcs_address: str, version: int, idle_timeout_s: float) -> dict:
    """What AutoscalingCluster generates (Ray's fake_multi_node/example.yaml with our types)."""
    node = {"node_config": {}}
    return {
        "cluster_name": "fake_multinode",
        **config_shape(idle_timeout_s),
        "provider": fake_provider_config(gcs_address, version),
        "available_node_types": {
            HEAD_TYPE: {**node, "resources": {"CPU": 0}, "max_workers": 0},
            WORKER_TYPE: {
                **node,
                "resources": {"CPU": 1},
                "min_workers": 0,
                "max_workers": MAX_WORKERS,
            },
        },
        "auth": {},
        "docker": {},
        **{key: [] for key in COMMAND_KEYS},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def fake_head_env(version: int, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # as AutoscalingCluster.start() sets them
        "RAY_FAKE_CLUSTER": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        # The fake nodes' address: loopback rather than this machine's outward address.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_enable_autoscaler_v2": "1" if version == 2 else "0",
        "TMPDIR": str(root),  # where the dashboard's multiprocessing dirs go, removed after
        OWNED.run_marker: "1",
    }
    if version == 2:
        env |= {
            "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
            "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
        }
    return env


@contextlib.contextmanager
def fake_ray_cluster(version: int, idle_timeout_s: float) -> Iterator[FakeRayCluster]:
    """A head with Ray's autoscaler and fake provider, as AutoscalingCluster starts it, but
    on its own temp dir, ports and loopback address; only its own process group is stopped."""
    # Short: Ray's socket paths under the temp dir must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="rr-", dir="/tmp"))
    OWNED.ray_roots.add(str(root))
    ip = ""
    cluster = None
    try:
        ip = loopback.lease(root)
        cluster = FakeRayCluster(version, root, ip, f"{ip}:{free_port(set())}")
        start_fake_ray(cluster, idle_timeout_s)
        yield cluster
    finally:
        with INTERRUPTS.cleanup():
            if cluster is not None:
                cluster.gcs = None
                stop_fake_ray(cluster)
            if ip:
                loopback.release(ip, root)
            shutil.rmtree(root, ignore_errors=True)


def start_fake_ray(cluster: FakeRayCluster, idle_timeout_s: float) -> None:
    """Start the head (the caller stops it, also when this fails) and wait for its
    autoscaler."""
    root, ip, version = cluster.root, cluster.head_ip, cluster.version
    ports = {int(cluster.gcs_address.rsplit(":", 1)[1])}
    config = root / "autoscaling.json"
    config.write_text(json.dumps(fake_cluster_config(cluster.gcs_address, version, idle_timeout_s)))
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=0",
        f"--autoscaling-config={config}",
        f"--node-ip-address={ip}",
        f"--port={cluster.gcs_address.rsplit(':', 1)[1]}",
        f"--temp-dir={root}",
        f"--dashboard-host={ip}",
        f"--dashboard-port={free_port(ports)}",
        f"--ray-client-server-port={free_port(ports)}",
        f"--dashboard-agent-listen-port={free_port(ports)}",
        "--disable-usage-stats",
    ]
    with open(root / "head.log", "wb") as out, INTERRUPTS.cleanup():  # to record its PID
        cluster.head = subprocess.Popen(
            command,
            env=fake_head_env(version, root),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its PID is the PGID of all its processes
        )
        OWNED.ray_groups.add(cluster.head.pid)

    def head_up() -> bool:
        if cluster.head is not None and cluster.head.poll() is not None:
            tail = (root / "head.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Ray's head exited with {cluster.head.returncode}:\n{tail}")
        return listening(cluster.gcs_address)

    wait_for("Ray's head GCS", head_up)
    cluster.gcs = GcsClient(address=cluster.gcs_address)
    wait_for("Ray's head node", lambda: head_up() and head_alive(cluster.gcs))
    wait_for("Ray's autoscaler", lambda: head_up() and cluster.autoscaler_running())


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_fake_ray(cluster: FakeRayCluster) -> None:
    """SIGTERM the head's `ray start` (it stops its own processes), then its process group
    (the fake nodes' raylets, started by Ray's monitor, outlive it), SIGKILL after 3 s; then
    any process naming this cluster's temp dir that left the group."""
    head = cluster.head
    if head is None:
        return
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)

    def group_gone() -> bool:
        head.poll()  # reap the leader, or its zombie keeps the group alive
        return not group_alive(head.pid)

    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        if group_gone():
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, sig)
        with contextlib.suppress(TimeoutError):
            wait_for("the head's process group to exit", group_gone, wait_s)
    kill_pids([p for p in processes() if str(cluster.root) in p.cmdline])


# -- a round ------------------------------------------------------------------------------

# Runs on this machine, attached to the head's raylet: connects, waits for a line on stdin,
# submits one task needing {CPU: 1} and reports when (epoch seconds), one JSON line each.
DRIVER = """\
import json, sys, time
import ray

ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], log_to_driver=False,
         logging_level="ERROR")

@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()

def say(**event):
    print(json.dumps(event), flush=True)

say(event="connected")
sys.stdin.readline()
submitted = time.time()
ref = where.remote()
say(event="submitted", at=submitted)
node = ray.get(ref, timeout=float(sys.argv[3]))
say(event="finished", at=time.time(), node=node)
"""


class Driver:
    """The driver subprocess and the JSON events it prints."""

    def __init__(self, cluster: Cluster, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env |= {"RAY_USAGE_STATS_ENABLED": "0", OWNED.run_marker: "1"}
        timeout = str(TIMEOUT_S)
        self._log_path = log_path
        self._err: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-c", DRIVER, cluster.gcs_address, cluster.head_ip, timeout],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self._events.put(json.loads(line))
        self._events.put({"event": "exit"})

    def event(self, name: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any] | None:
        """The next event, which must be `name`; None if none came within `timeout_s`."""
        try:
            event = self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if event["event"] == "exit":
            self.proc.wait()
            tail = self._log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the driver exited with {self.proc.returncode}:\n{tail}")
        if event["event"] != name:
            raise RuntimeError(f"the driver said {event}, expected {name}")
        return event

    def go(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        submitted = self.event("submitted")
        if submitted is None:
            raise TimeoutError("the driver did not submit its task")
        return submitted["at"]

    def stop(self) -> None:
        """Let it exit (it does once the task is done), or kill it after 10 s."""
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


@dataclass
class ScaleUp:
    submitted: float
    finished: float
    worker: RayWorker
    alive: float  # first seen alive in the GCS
    raylet: Proc
    leader: Proc | None  # rayctl: the node's `ray start --block`


def find_raylet(cluster: Cluster, node_id: str) -> Proc:
    for proc in processes():
        is_raylet = "raylet" in proc.cmdline and f"--node_id={node_id}" in proc.cmdline
        if is_raylet and cluster.owns(proc):
            return proc
    raise RuntimeError(f"no raylet process of node {node_id} in {cluster.side}'s cluster")


def watch_scale_up(cluster: Cluster, driver: Driver, settle_s: float) -> ScaleUp:
    if driver.event("connected") is None:
        raise TimeoutError("the driver did not connect")
    time.sleep(settle_s)
    submitted = driver.go()
    first_alive: dict[str, tuple[float, RayWorker, Proc]] = {}
    finished = None
    deadline = time.monotonic() + TIMEOUT_S
    while finished is None:
        for worker in ray_workers(cluster.gcs).values():
            if worker.alive and worker.node_id not in first_alive:
                seen = time.time()
                first_alive[worker.node_id] = (seen, worker, find_raylet(cluster, worker.node_id))
        finished = driver.event("finished", timeout_s=POLL_S)  # the poll's pace
        if time.monotonic() > deadline:
            raise TimeoutError(f"the task did not finish within {TIMEOUT_S:g} s")
    if finished["node"] not in first_alive:
        raise RuntimeError(f"the task ran on {finished['node']}, not on a new worker")
    alive, worker, raylet = first_alive[finished["node"]]
    leader = read_proc(raylet.pgid) if isinstance(cluster, RayctlCluster) else None
    return ScaleUp(submitted, finished["at"], worker, alive, raylet, leader)


def watch_scale_down(cluster: Cluster, up: ScaleUp, idle_timeout_s: float) -> Measures:
    """Epoch times at which the worker was seen dead in Ray, its raylet exited and (rayctl)
    it left the launcher's node list."""
    seen: Measures = {}
    deadline = time.monotonic() + idle_timeout_s + TIMEOUT_S
    listed = cluster.lists(up.worker.instance_id) is not None
    while len(seen) < 2 + listed:
        now = time.time()
        worker = ray_workers(cluster.gcs).get(up.worker.node_id)
        if "gone" not in seen and (worker is None or not worker.alive):
            seen["gone"] = now
        if "raylet exited" not in seen and not still_running(up.raylet):
            seen["raylet exited"] = now
        if listed and "unlisted" not in seen and not cluster.lists(up.worker.instance_id):
            seen["unlisted"] = now
        if time.monotonic() > deadline:
            raise TimeoutError(f"the idle worker was not removed: saw only {sorted(seen)}")
        time.sleep(POLL_S)
    return seen


@dataclass
class Round:
    up: Measures  # seconds since the task's submission
    down: Measures  # seconds since the task's end
    phases: Measures  # the scale-up, cut into consecutive phases
    timeline: Measures  # seconds since the submission, of each step seen


def scale_up_phases(steps: Measures) -> Measures:
    """Consecutive phases of the scale-up, from epoch times of its steps; for rayctl the launch
    to raylet phase is also cut by its bootstrap stages and its `ray start`."""
    phases = {
        "submit -> launch decided": steps["launch"] - steps["submitted"],
        "launch -> raylet process started": steps["raylet started"] - steps["launch"],
        "raylet started -> alive in GCS": steps["alive"] - steps["raylet started"],
        "alive -> task finished": steps["finished"] - steps["alive"],
    }
    if "ray start spawned" in steps:
        phases |= {
            "  launch -> stage starting-ray": steps["stage starting-ray"] - steps["launch"],
            "  starting-ray -> `ray start` spawned": steps["ray start spawned"]
            - steps["stage starting-ray"],
            "  `ray start` -> raylet started": steps["raylet started"] - steps["ray start spawned"],
        }
    return phases


def measure_round(cluster: Cluster, idle_timeout_s: float, settle_s: float, tmp: Path) -> Round:
    driver = None
    try:
        with INTERRUPTS.cleanup():  # to hold on to it
            driver = Driver(cluster, tmp / f"driver-{cluster.side}.log")
        up = watch_scale_up(cluster, driver, settle_s)
    finally:
        if driver is not None:
            with INTERRUPTS.cleanup():
                driver.stop()
    seen = watch_scale_down(cluster, up, idle_timeout_s)
    decided = cluster.decisions(up.worker, up.submitted)
    t0, t1 = up.submitted, up.finished
    steps = {
        **decided,
        "submitted": t0,
        "raylet started": up.raylet.started,
        "alive": up.alive,
        "finished": t1,
        **seen,
    }
    if up.leader is not None:
        steps["ray start spawned"] = up.leader.started
    up_m = {
        "decision": decided["launch"] - t0,
        "raylet started": up.raylet.started - t0,
        "alive": up.alive - t0,
        "finished": t1 - t0,
    }
    down_m = {
        "terminate": decided["terminate"] - t1,
        **{name: at - t1 for name, at in seen.items()},
        "overhead": seen["gone"] - t1 - idle_timeout_s,
    }
    timeline = {k: v - t0 for k, v in sorted(steps.items(), key=lambda i: i[1]) if v != t0}
    return Round(up_m, down_m, scale_up_phases(steps), timeline)


# -- rounds and report --------------------------------------------------------------------

Side = Callable[[], contextlib.AbstractContextManager[Cluster]]


def sides(ray_versions: list[int], idle_timeout_s: float) -> dict[str, Side]:
    made: dict[str, Side] = {"rayctl": lambda: rayctl_cluster(idle_timeout_s)}
    for version in ray_versions:
        made[f"ray-v{version}"] = lambda v=version: fake_ray_cluster(v, idle_timeout_s)
    return made


def use_one_token(path: Path) -> None:
    """Both sides run with Ray's token authentication (rayctl's default) and one token, so
    this process's GCS clients, the drivers and Ray's fake head (all inheriting this
    environment) reach either; rayctl's clusters are given it before their `up`."""
    path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    os.environ |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    Config.initialize("")  # Ray caches the mode it read at import


def run_rounds(options: argparse.Namespace) -> dict[str, list[Round]]:
    made = sides(options.ray, options.idle_timeout)
    results: dict[str, list[Round]] = {side: [] for side in made}
    tmp = Path(tempfile.mkdtemp(prefix="reaction-"))
    use_one_token(tmp / "ray_auth_token")
    try:
        for i in range(options.rounds):
            order = list(made)[i % len(made) :] + list(made)[: i % len(made)]
            for side in order:
                with made[side]() as cluster:
                    result = measure_round(cluster, options.idle_timeout, options.settle, tmp)
                results[side].append(result)
                log(
                    f"round {i + 1}/{options.rounds} {side:7}: up decision "
                    f"{result.up['decision']:.2f} s, alive {result.up['alive']:.2f} s, finished "
                    f"{result.up['finished']:.2f} s; down gone {result.down['gone']:.2f} s"
                )
    finally:
        with INTERRUPTS.cleanup():
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def median_of(runs: list[Measures]) -> Measures:
    keys = dict.fromkeys(k for run in runs for k in run)  # first-seen order
    return {k: statistics.median(run[k] for run in runs if k in run) for k in keys}


def summarize(results: dict[str, list[Round]], options: argparse.Namespace) -> dict[str, Any]:
    median = {
        side: {
            "up": median_of([r.up for r in runs]),
            "down": median_of([r.down for r in runs]),
            "phases": median_of([r.phases for r in runs]),
            "timeline": median_of([r.timeline for r in runs]),
        }
        for side, runs in results.items()
    }
    compared: dict[str, dict[str, Any]] = {}
    for phase, measure in COMPARED:
        rayctl = median["rayctl"][phase][measure]
        row: dict[str, Any] = {"rayctl_s": rayctl}
        for side in results:
            if side != "rayctl":
                theirs = median[side][phase][measure]
                ratio = rayctl / theirs if theirs > 0 else float("inf")
                row[side] = {"s": theirs, "ratio": ratio, "target_met": ratio < TARGET_RATIO}
        compared[f"{phase} {measure}"] = row
    return {
        "targets": issue_targets(results, median),
        "ray_version": ray.__version__,
        "rounds": options.rounds,
        "idle_timeout_s": options.idle_timeout,
        "settle_s": options.settle,
        "rayctl_tick_s": float(os.environ.get("RAYCTL_MONITOR_TICK_S", "1.0")),
        "ray_tick_s": 1.0,
        "target_ratio": TARGET_RATIO,
        "compared": compared,
        "median": median,
        "runs": {side: [vars(r) for r in runs] for side, runs in results.items()},
    }


def issue_targets(results: dict[str, list[Round]], median: dict[str, Any]) -> dict[str, Any]:
    """The reaction targets: submit -> launch decided under DECISION_TARGET_S (median) and
    under TARGET_RATIO of each Ray autoscaler's; launch decided -> worker alive within
    BARE_START_RATIO of the same worker's own `ray start` (spawned -> alive in GCS, measured
    in the same round): the physical limit here, since a rayctl node is a real `ray start`
    (Ray's fake provider starts raylets in-process and is shown beside, not as the target)."""
    decided = median["rayctl"]["up"]["decision"]
    ratios = []
    for run in results["rayctl"]:
        steps = run.timeline
        if {"launch", "alive", "ray start spawned"} <= steps.keys():
            bare = steps["alive"] - steps["ray start spawned"]
            ratios.append((steps["alive"] - steps["launch"]) / bare)
    to_alive = statistics.median(ratios) if ratios else float("nan")
    others = {side: median[side]["up"]["decision"] for side in median if side != "rayctl"}
    return {
        "decision_s": decided,
        "decision_under_s": decided < DECISION_TARGET_S,
        "decision_ratio": {side: decided / theirs for side, theirs in others.items()},
        "decided_to_alive_over_bare_start": to_alive,
        "decided_to_alive_met": to_alive <= BARE_START_RATIO,
        "ray_decided_to_alive_s": {
            side: median[side]["up"]["alive"] - median[side]["up"]["decision"] for side in others
        },
    }


def print_targets(targets: dict[str, Any]) -> None:
    ok = {True: "PASS", False: "FAIL"}
    print("\nissue targets:")
    print(
        f"  [{ok[targets['decision_under_s']]}] submit -> launch decided under "
        f"{DECISION_TARGET_S:g} s (median): {targets['decision_s']:.2f} s"
    )
    for side, ratio in targets["decision_ratio"].items():
        print(
            f"  [{ok[ratio < TARGET_RATIO]}] submit -> launch decided under {TARGET_RATIO:g}x "
            f"{side}'s: {ratio:.2f}x"
        )
    ratio = targets["decided_to_alive_over_bare_start"]
    beside = ", ".join(f"{s} {t:.2f} s" for s, t in targets["ray_decided_to_alive_s"].items())
    print(
        f"  [{ok[targets['decided_to_alive_met']]}] launch decided -> worker alive within "
        f"{BARE_START_RATIO:g}x of the same worker's `ray start` (spawned -> alive): "
        f"{ratio:.2f}x (Ray's fake provider, raylets in-process: {beside})"
    )


LABELS = {
    "up decision": "scale-up: submit -> launch decided",
    "up alive": "scale-up: submit -> worker alive",
    "up finished": "scale-up: submit -> task finished",
    "down gone": "scale-down: task end -> worker gone",
    "down overhead": "scale-down: that minus the idle timeout",
}


def print_table(summary: dict[str, Any]) -> None:
    compared, median = summary["compared"], summary["median"]
    others = [s for s in median if s != "rayctl"]
    print(
        f"Autoscaler reaction: rayctl (local provider) vs Ray {summary['ray_version']} "
        f"(fake multi-node provider), median of {summary['rounds']} round(s)"
    )
    print(
        f"head 0 CPU, workers 1 CPU (0..{MAX_WORKERS}), idle timeout "
        f"{summary['idle_timeout_s']:g} s, ticks: rayctl {summary['rayctl_tick_s']:g} s, "
        f"Ray {summary['ray_tick_s']:g} s\n"
    )
    header = f"{'':48}{'rayctl':>8}" + "".join(f"{s:>8}" for s in others)
    print(header + "".join(f"{'/' + s[4:]:>9}" for s in others))
    for key, label in LABELS.items():
        row = compared[key]
        line = f"{label:48}{row['rayctl_s']:7.2f}s" + "".join(
            f"{row[s]['s']:7.2f}s" for s in others
        )
        print(line + "".join(f"{row[s]['ratio']:8.2f}x" for s in others))
    down = median["rayctl"]["down"]
    if "unlisted" in down:
        label = "scale-down: task end -> out of `rayctl status`"
        print(f"{label:48}{down['unlisted']:7.2f}s")
    print(f"\ntarget: rayctl under {TARGET_RATIO:g}x Ray's time")
    for side in others:
        met = [k for k, row in compared.items() if row[side]["target_met"]]
        print(f"  vs {side}: met for {len(met)} of {len(compared)}: {', '.join(met) or 'none'}")
    print_targets(summary["targets"])
    print("\nwhere the scale-up goes, median seconds per phase:")
    print(f"{'':48}" + "".join(f"{s:>8}" for s in median))
    for phase in median["rayctl"]["phases"]:
        cells = [median[s]["phases"].get(phase) for s in median]
        print(f"{phase:48}" + "".join("" if c is None else f"{c:7.2f}s" for c in cells))
    for side in median:
        print(f"\n{side} timeline, median seconds since the task's submission:")
        for step, at in sorted(median[side]["timeline"].items(), key=lambda item: item[1]):
            print(f"  {step:34}{at:7.2f}")


def check_leftovers() -> list[Proc]:
    """Processes of this run still there after cleanup: reported, then killed by PID."""
    time.sleep(1)
    left = OWNED.leftovers()
    if left:
        log(f"LEFTOVER processes of this run ({len(left)}), killing them by PID:")
        for proc in left:
            log(f"  {proc.pid} (group {proc.pgid}): {proc.cmdline[:160]}")
        kill_pids(left)
    else:
        log("cleanup check: no process of this run is left")
    return left


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--ray",
        default="v2,v1",
        help="Ray autoscaler versions to measure, comma-separated (default v2,v1)",
    )
    parser.add_argument("--idle-timeout", type=float, default=6.0, help="seconds (default 6)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds between connecting and submitting"
    )
    options = parser.parse_args()
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        options.ray = [int(v.strip().removeprefix("v")) for v in options.ray.split(",") if v]
    except ValueError:
        parser.error("--ray takes v1, v2 or v2,v1")
    if not options.ray or set(options.ray) - {1, 2}:
        parser.error("--ray takes v1, v2 or v2,v1")
    return options


def main() -> None:
    options = parse_args()
    INTERRUPTS.install()
    try:
        summary = summarize(run_rounds(options), options)
    except KeyboardInterrupt:
        log("interrupted; the clusters are down")
        with INTERRUPTS.cleanup():
            check_leftovers()
        sys.exit(130)
    except BaseException:
        with INTERRUPTS.cleanup():
            check_leftovers()
        raise
    with INTERRUPTS.cleanup():
        summary["leftovers"] = [vars(p) for p in check_leftovers()]
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
