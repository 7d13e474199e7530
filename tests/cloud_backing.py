"""Cloud instances backed by real machines, for the end-to-end tests of the cloud providers
against their fakes (moto for EC2, tests/fakes/gce for Compute Engine, tests/fakes/arm for
Azure), and the steps those tests share (up, a job that adds a worker, idle scale-down, down).

A watcher thread polls the fake cloud's instances: one that is booting or running with a
private IP gets a namespace host (tests/sshhosts.py) at that IP ("the VM boots"); one that
stops has its host powered off with its disk (its state: keys, home) kept, and booted again
when it starts; one that goes has its host powered off and removed. The fakes give
instances addresses in the host network's subnet, and configs use internal IPs only: a
fake's public addresses are never contacted.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
import yaml

from rayctl.paths import ray_token_file
from rayctl.providers.base import NodeKind, Tag
from rayctl.runtime.ray_adapter import list_ray_nodes
from tests.conftest import SPREAD_JOB, WHERE_JOB, cluster_pids, require_test_hosts, wait_for
from tests.sshhosts import HostNetwork, SSHHost, _inits_of

POLL_S = 0.2
B = TypeVar("B", bound="Backed")


@dataclass(frozen=True)
class Seen:
    """An instance as the fake cloud lists it."""

    id: str
    address: str | None
    up: bool  # booting or running (else stopping, stopped or going)
    tags: dict[str, str]
    kept: bool = False  # stopping or stopped, its disk kept to start again


@dataclass
class Booted:
    instance_id: str
    host: SSHHost
    tags: dict[str, str]


class InstanceHosts:
    """A host for every instance `observe` lists as up (with `boot`); start() and stop()."""

    def __init__(
        self,
        network: HostNetwork,
        observe: Callable[[], list[Seen]],
        *,
        boot: bool = True,
        on_head: Callable[[SSHHost], None] | None = None,
        binds_for: Callable[[Seen], Mapping[str, Path]] | None = None,
        shutdown_s: float = 0.0,
    ) -> None:
        self.network = network
        # How long an instance's host runs on once it is seen going, as a real instance's OS
        # takes a while to shut down (its processes get SIGTERM and time to finish).
        self._shutdown_s = shutdown_s
        self._going: dict[str, float] = {}  # instance id -> when it was first seen going
        self._observe = observe
        self._boot_hosts = boot
        self._on_head = on_head
        self._binds_for = binds_for  # what an instance's host binds before its sshd starts
        self.booted: dict[str, Booted] = {}  # instance id -> its host now
        self.stopped: dict[str, Booted] = {}  # instance id -> its host, off, state kept
        # Instance id -> Ray's processes that ran on its host when the instance stopped.
        self.ray_at_stop: dict[str, list[str]] = {}
        self.ever_booted: dict[str, str] = {}  # instance id -> private IP
        self.errors: list[str] = []  # hosts the watcher could not boot or remove
        self.list_failures = 0  # a fake server may answer 500 under concurrent calls
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._boot_hosts:
            self._thread = threading.Thread(target=self._watch, name="cloud-hosts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for booted in [*self.booted.values(), *self.stopped.values()]:
                self.network.remove_host(booted.host)
            self.booted.clear()
            self.stopped.clear()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # keep watching; the test sees the error
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def sync(self) -> None:
        """Power off the hosts of instances that stopped or went; boot hosts for new ones."""
        try:
            seen = self._observe()
        except Exception:  # the next poll asks again
            self.list_failures += 1
            return
        with self._lock:
            up = {s.id for s in seen if s.up}
            kept = {s.id for s in seen if s.kept}
            now = time.monotonic()
            for instance_id, booted in list(self.booted.items()):
                if instance_id in up:
                    continue
                if instance_id in kept:  # off at once, as a real stop; its disk stays
                    self.ray_at_stop[instance_id] = [
                        c for c in booted.host.processes().values() if _is_ray(c)
                    ]
                    booted.host.stop()
                    self.stopped[instance_id] = self.booted.pop(instance_id)
                    continue
                going = self._going.setdefault(instance_id, now)
                if now - going >= self._shutdown_s:
                    self.network.remove_host(booted.host)
                    del self.booted[instance_id]
                    del self._going[instance_id]
            for instance_id, off in list(self.stopped.items()):
                if instance_id in up:  # started again: the same machine boots
                    off.host.start()
                    self.booted[instance_id] = self.stopped.pop(instance_id)
                elif instance_id not in kept:
                    self.network.remove_host(off.host)
                    del self.stopped[instance_id]
            for instance in seen:
                if not instance.up or not instance.address or instance.id in self.booted:
                    continue
                # An address the fake gave again: whatever held it is gone (removed above).
                self._boot(instance)

    def _boot(self, instance: Seen) -> None:
        assert instance.address
        host = self.network.add_host(
            instance.address,
            name="ip-" + instance.address.replace(".", "-"),
            binds=self._binds_for(instance) if self._binds_for else None,
        )
        if self._on_head and instance.tags.get(Tag.KIND) == NodeKind.HEAD.value:
            self._on_head(host)
        self.booted[instance.id] = Booted(instance.id, host, instance.tags)
        self.ever_booted[instance.id] = instance.address

    def hosts(self) -> dict[str, SSHHost]:
        """Instance id -> its running host."""
        with self._lock:
            return {i: b.host for i, b in self.booted.items()}


def _is_ray(command: str) -> bool:
    """Whether a host's process is one of Ray's own (its GCS, a raylet)."""
    return any(name in command for name in ("gcs_server", "/raylet "))


class Backed:
    """A fake cloud whose instances are hosts: what tests read of its InstanceHosts, and
    what a process needs in its environment to use the fake."""

    network: HostNetwork
    _hosts: InstanceHosts

    def cloud_env(self) -> dict[str, str]:
        """The fake's endpoint and credentials, as the cloud's variables give them."""
        raise NotImplementedError

    def cluster_nodes(self, cluster: str) -> dict[str, list[str]]:
        """Node kind -> ids of the cluster's instances that are booting or running."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """What a process needs to use this cloud (the test's rayctl, and so the head's):
        the fake on the bridge is reached directly, never through a proxy."""
        gateway = self.network.gateway
        return {**self.cloud_env(), "NO_PROXY": gateway, "no_proxy": gateway}

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for var, value in self.env().items():
            monkeypatch.setenv(var, value)

    def __enter__(self) -> Self:
        self._hosts.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hosts.stop()

    @property
    def errors(self) -> list[str]:
        return self._hosts.errors

    @property
    def ever_booted(self) -> dict[str, str]:
        return self._hosts.ever_booted

    @property
    def ray_at_stop(self) -> dict[str, list[str]]:
        """Instance id -> Ray's processes that ran on its host when it stopped."""
        return self._hosts.ray_at_stop

    def hosts(self) -> dict[str, SSHHost]:
        """Instance id -> its running host."""
        return self._hosts.hosts()


# -- what the end-to-end tests of cloud providers share ---------------------------------------


def in_use(cloud: AbstractContextManager[B], monkeypatch: pytest.MonkeyPatch) -> Iterator[B]:
    """A fixture's body: test hosts are required (CI fails rather than skips), then the
    fake cloud runs and this process's environment points at it."""
    require_test_hosts()
    with cloud as backed:
        backed.use(monkeypatch)
        yield backed


def cluster_config(
    name: str, provider: dict[str, Any], node_config: dict[str, Any], key: Path
) -> dict[str, Any]:
    """A head (no CPUs) and 1..2 one-CPU workers on the hosts, idle after 6 s, reached as
    root with the network's key, running this machine's Python (shared by the hosts)."""
    return {
        "cluster_name": name,
        "max_workers": 2,
        "idle_timeout_minutes": 0.1,
        "provider": {**provider, "use_internal_ips": True, "cache_stopped_nodes": False},
        "auth": {"ssh_user": "root", "ssh_private_key": str(key)},
        "available_node_types": {
            "head": {"node_config": node_config, "resources": {"CPU": 0}},
            "worker": {
                "node_config": node_config,
                "resources": {"CPU": 1},
                "min_workers": 1,
                "max_workers": 2,
            },
        },
        "head_node_type": "head",
        "rayctl": {"runtime": {"python": sys.executable}},
    }


def write_cluster_config(config: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / f"{config['cluster_name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_ray_nodes(
    cli: Callable[..., Any], config: Path, rayctl_home: Path, nodes: dict[str, SSHHost]
) -> None:
    """`status` names the head's address and a running monitor, and every Ray node runs on
    its instance's private IP, named by its instance id (`nodes`: id -> host, head first)."""
    status = json.loads(cli("status", config, "--json").out)
    assert status["head_ip"] == next(iter(nodes.values())).address
    assert status["monitor_running"]
    token = ray_token_file(rayctl_home, yaml.safe_load(config.read_text())["cluster_name"])
    ray_nodes = list_ray_nodes(status["gcs_address"], token_file=token)
    assert sorted((r.instance_id, r.ip) for r in ray_nodes if r.alive) == sorted(
        (i, h.address) for i, h in nodes.items()
    )


def up_with_a_worker(
    cli: Callable[..., Any], cloud: Backed, name: str, config: Path, rayctl_home: Path
) -> tuple[str, str]:
    """`up` makes the head and the worker min_workers asks for, each a host at its
    instance's private IP in the network's subnet and a Ray node there: (head id, worker id)."""
    result = cli("up", config, "--yes")
    assert result.code == 0, (result.text, cloud.errors)
    kinds = cloud.cluster_nodes(name)
    (head_id,) = kinds[NodeKind.HEAD.value]
    (first_id,) = kinds[NodeKind.WORKER.value]
    hosts = cloud.hosts()
    head, first = hosts[head_id], hosts[first_id]
    subnet = cloud.network.network
    assert ip_address(head.address) in subnet and ip_address(first.address) in subnet
    check_ray_nodes(cli, config, rayctl_home, {head_id: head, first_id: first})
    return head_id, first_id


def a_job_adds_a_worker(
    cli: Callable[..., Any], cloud: Backed, name: str, config: Path, tmp_path: Path, first: str
) -> str:
    """The spread job's second actor needs another worker: the monitor on the head launches
    it through the fake, and the job's actors run on both workers' hosts. Its id."""
    job = tmp_path / "spread.py"
    job.write_text(SPREAD_JOB)
    submitted = cli("submit", config, job)
    assert submitted.code == 0, submitted.text
    (second,) = set(cloud.cluster_nodes(name)[NodeKind.WORKER.value]) - {first}
    hosts = cloud.hosts()
    assert f"hosts: {sorted([hosts[first].name, hosts[second].name])}" in submitted.out
    return second


def an_idle_worker_goes(cloud: Backed, name: str, workers: set[str]) -> str:
    """Idle: back to min_workers (one); the idle worker's instance goes, and its host. Its id."""
    wait_for(
        lambda: len(cloud.cluster_nodes(name).get(NodeKind.WORKER.value, [])) == 1,
        90,
        "the idle worker to go",
    )
    (gone,) = workers - set(cloud.cluster_nodes(name)[NodeKind.WORKER.value])
    wait_for(lambda: gone not in cloud.hosts(), 10, "the idle worker's host to go")
    return gone


def stopped_then_resumed(
    cli: Callable[..., Any],
    cloud: Backed,
    name: str,
    config: Path,
    tmp_path: Path,
    rayctl_home: Path,
) -> None:
    """Autostop without `down`: `up --autostop` (6 s); idle, the head's monitor stops Ray on
    every node, then the worker's instance and its own (their hosts power off with Ray
    already gone); `status` says so from the tags; `up` starts both again (Ray runs on each,
    a job runs on the worker); `down` removes it (the caller checks that nothing is left)."""
    up = cli("up", config, "--yes", "--autostop", 0.1)
    assert up.code == 0, (up.text, cloud.errors)
    nodes = cloud.cluster_nodes(name)
    (head,), (worker,) = nodes[NodeKind.HEAD.value], nodes[NodeKind.WORKER.value]
    wait_for(lambda: cloud.ray_at_stop.keys() == {head, worker}, 120, "the instances to stop")
    assert cloud.ray_at_stop == {head: [], worker: []}  # Ray was stopped first
    assert cloud.cluster_nodes(name) == {} and cloud.hosts() == {}
    status = json.loads(cli("status", config, "--json").out)
    assert [(n["id"], n["state"]) for n in status["nodes"]] == [
        (head, "stopped"),
        (worker, "stopped"),
    ]
    assert status["autostop"]["stopped_at"] is not None, status["autostop"]
    assert status["autostop"]["down"] is False and not status["ray_reachable"]

    again = cli("up", config, "--yes", "--json")  # without --autostop: it stays up
    assert again.code == 0, (again.text, cloud.errors)
    assert json.loads(again.out)["outcomes"] == {head: "started", worker: "started"}
    hosts = cloud.hosts()
    check_ray_nodes(cli, config, rayctl_home, {head: hosts[head], worker: hosts[worker]})
    job = tmp_path / "job.py"
    job.write_text(WHERE_JOB)
    ran = cli("submit", config, job)
    assert ran.code == 0 and f"ran on: {hosts[worker].name}" in ran.out, ran.text
    status = json.loads(cli("status", config, "--json").out)
    assert status["autostop"] is None

    down = cli("down", config, "--yes")
    assert down.code == 0, down.text


def down_from_a_fresh_machine(
    cli: Callable[..., Any],
    config: Path,
    wrong_key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`down` with no rayctl state, not even a key the hosts accept: the head's monitor
    cannot be stopped over SSH; it goes with the head's instance."""
    fresh = yaml.safe_load(config.read_text())
    fresh["auth"]["ssh_private_key"] = str(wrong_key)
    fresh_config = tmp_path / "fresh-machine.yaml"
    fresh_config.write_text(yaml.safe_dump(fresh))
    monkeypatch.setenv("RAYCTL_HOME", str(tmp_path / "fresh-machine"))
    down = cli("down", fresh_config, "--yes")
    assert down.code == 0, down.text


def nothing_runs_after_down(cloud: Backed, name: str, *, hosts_s: float = 10) -> None:
    """Every host is gone (within `hosts_s`), and every process of the cluster; the watcher
    saw no error."""
    wait_for(lambda: not cloud.network.hosts, hosts_s, "every host to go")
    wait_for(
        lambda: not list(_inits_of(cloud.network.dir)) and not cluster_pids(name),
        15,
        "every process to go",
    )
    assert cloud.errors == []


def a_job_keeps_it_then_the_idle_head_removes_it(
    cli: Callable[..., Any],
    cloud: Backed,
    name: str,
    config: Path,
    tmp_path: Path,
    *,
    timeout_s: float,
    gone: Callable[[], bool],
) -> None:
    """`up --autostop --down`; a job runs past the timeout and keeps the cluster (`status`
    says why); once it ends and the timeout passes, the head's monitor removes the cluster,
    itself included, until `gone` says nothing is left."""
    up = cli("up", config, "--yes", "--autostop", timeout_s / 60, "--down")
    assert up.code == 0, (up.text, cloud.errors)
    up_at = time.monotonic()
    job_s = timeout_s + 25  # past the status check below, with margin for a loaded machine
    job = tmp_path / "job.py"
    job.write_text(f"import time\ntime.sleep({job_s})\nprint('done')\n")
    submitted = cli("submit", config, "--detach", job)
    assert submitted.code == 0, submitted.text

    # Past the timeout (and some of the monitor's ticks) the job still holds it.
    time.sleep(max(0.0, up_at + timeout_s + 10 - time.monotonic()))
    status = json.loads(cli("status", config, "--json").out)
    assert status["autostop"]["down"] is True, status["autostop"]
    assert status["autostop"]["busy"].startswith("job(s) running"), status["autostop"]
    assert sum(map(len, cloud.cluster_nodes(name).values())) == 2 and len(cloud.hosts()) == 2

    wait_for(gone, job_s + timeout_s + 240, "the cluster to go")
