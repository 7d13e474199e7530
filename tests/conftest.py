"""Shared fixtures: an isolated rayctl home, the CLI run in-process, and real local clusters
that are always torn down, with a check by PID that none of their processes survive."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from rayctl.cli.app import run
from rayctl.providers.local.instances import marked_pids
from tests.sshhosts import HostNetwork, missing_capabilities

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def rayctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "rayctl-home"
    monkeypatch.setenv("RAYCTL_HOME", str(home))
    return home


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run rayctl in-process; returns exit code and captured stdout/stderr."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def wait_for(predicate, timeout_s: float = 30, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned), or fail the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# A task needs a CPU, which only workers have (heads get none): it prints the worker's host name.
WHERE_JOB = """\
import socket, ray
ray.init()

@ray.remote(num_cpus=1)
def where():
    return socket.gethostname()

print("ran on:", ray.get(where.remote(), timeout=120))
"""

# A job whose two actors hold a CPU each: with one 1-CPU worker up, the second needs another
# node. Bounded: a monitor that cannot launch fails the job instead of hanging the test.
SPREAD_JOB = """\
import socket, ray
ray.init()

@ray.remote(num_cpus=1)
class Where:
    def host(self):
        return socket.gethostname()

actors = [Where.remote() for _ in range(2)]
print("hosts:", sorted(ray.get([a.host.remote() for a in actors], timeout=120)))
"""


def cluster_pids(cluster_name: str) -> list[int]:
    """PIDs of processes started for `cluster_name` (they carry RAYCTL_CLUSTER in their env)."""
    return marked_pids("RAYCTL_CLUSTER", cluster_name)


@pytest.fixture
def file_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every os.fsync (of the path its fd names) and os.replace (of its target), in order:
    how a test sees that a state file is replaced durably."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def kill_leftovers(cluster_name: str) -> list[int]:
    """SIGKILL what a failed test left of its own cluster (by PID); returns those PIDs."""
    pids = cluster_pids(cluster_name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def write_private_key(path: Path, mode: int = 0o600) -> bytes:
    """A new ed25519 private key in OpenSSH's format at `path`, with `mode`; its bytes."""
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(mode)
    return pem


def write_config(path: Path, name: str, **overrides: object) -> Path:
    """The shipped cluster-configs/local.yaml under another name, with keys overridden."""
    config = yaml.safe_load((REPO / "cluster-configs" / "local.yaml").read_text())
    config.update(cluster_name=name, **overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class LocalCluster:
    name: str
    config: Path

    def status(self, cli) -> dict:
        result = cli("status", self.config, "--json")
        assert result.code == 0, result.text
        return json.loads(result.out)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def make_cluster(tmp_path: Path, rayctl_home: Path, cli) -> Iterator:
    """Factory of local cluster configs; every cluster made is downed after the test, and
    the test fails if any of its processes outlive `down`."""
    made: list[LocalCluster] = []

    def make(prefix: str = "t", **overrides: object) -> LocalCluster:
        name = unique_name(prefix)
        config = write_config(tmp_path / f"{name}.yaml", name, **overrides)
        cluster = LocalCluster(name, config)
        made.append(cluster)
        return cluster

    yield make
    survivors = {}
    for cluster in made:
        cli("down", cluster.config, "--yes")
        deadline = time.monotonic() + 10
        while cluster_pids(cluster.name) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = kill_leftovers(cluster.name)
        if left:
            survivors[cluster.name] = left
    assert not survivors, f"processes outlived `rayctl down`: {survivors}"


def require_test_hosts() -> None:
    """sshd test hosts need root; CI runs as root, so there a missing capability fails the
    test instead of skipping it."""
    missing = missing_capabilities()
    if missing:
        reason = "sshd test hosts need " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def host_network() -> Iterator[HostNetwork]:
    """Four real sshd hosts in network namespaces (tests/sshhosts.py), shared by the session."""
    require_test_hosts()
    with HostNetwork(4) as network:
        yield network
