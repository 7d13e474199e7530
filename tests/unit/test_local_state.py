"""The local provider's state: an interrupted `down` is finished by the next one, a node
that cannot be stopped is named (and forgotten only with --force), nodes.json is replaced
durably, and a corrupted one is a clear error, never an empty cluster. No Ray here: nodes
are records, some with a stand-in process started the way a node's Ray is."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayctl.errors import StateCorrupted, TerminationFailed
from rayctl.ops import down as down_module
from rayctl.providers.base import Node, NodeKind, Tag
from rayctl.providers.local import loopback
from rayctl.providers.local.instances import LocalProvider, _free_ports
from rayctl.providers.registry import load_config
from rayctl.runtime import detached
from rayctl.runtime.runner import CommandResult
from tests.conftest import cluster_pids, write_config

NAME = "statetest"
HEAD, WORKER = "ray.head.default", "ray.worker.cpu"


@pytest.fixture
def leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lease_dir = tmp_path / "leases"
    monkeypatch.setattr(loopback, "LEASE_DIR", lease_dir)
    return lease_dir


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.yaml", NAME)


@pytest.fixture
def provider(config_path: Path, rayctl_home: Path, leases: Path) -> Iterator[LocalProvider]:
    yield LocalProvider(load_config(config_path).config, home=rayctl_home)
    for pid in standins():  # what a failed test left, by its marker (never by name)
        os.kill(pid, signal.SIGKILL)


def standins() -> list[int]:
    """PIDs of the stand-in processes of this test's cluster."""
    return cluster_pids(NAME)


def node(provider: LocalProvider, kind: NodeKind) -> Node:
    (made,) = provider.create_nodes(HEAD if kind is NodeKind.HEAD else WORKER, 1, {Tag.KIND: kind})
    return made


def start_standin(provider: LocalProvider, made: Node) -> int:
    """A process in the node's slot, started as its Ray would be; returns its PID."""
    result = detached.start(
        provider.runner(made), made.id, ["exec sleep 300"], env={"RAYCTL_CLUSTER": NAME}
    )
    assert result.ok, result.tail
    return int((provider.node_home(made.id) / ".rayctl/procs" / made.id / "pid").read_text())


def nothing_left(rayctl_home: Path, leases: Path) -> None:
    assert not (rayctl_home / "clusters" / NAME).exists()
    assert not leases.exists() or list(leases.iterdir()) == []
    assert standins() == []


def test_down_finishes_a_termination_interrupted_between_steps(
    provider: LocalProvider,
    cli,
    config_path: Path,
    rayctl_home: Path,
    leases: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(down_module, "SWEEP_PAUSE_S", 0.0)
    # Interrupted after its home was removed (its process was stopped before that).
    head = node(provider, NodeKind.HEAD)
    # Interrupted after its process was stopped: a stale pid file, nothing running.
    stopped = node(provider, NodeKind.WORKER)
    pid = start_standin(provider, stopped)
    os.kill(pid, signal.SIGKILL)
    # Its home removed by hand while its process still runs: found by its marker and stopped.
    orphan = node(provider, NodeKind.WORKER)
    orphan_pid = start_standin(provider, orphan)
    for made in (head, orphan):
        shutil.rmtree(provider.node_home(made.id))
    assert len(provider.list_nodes()) == 3

    result = cli("down", config_path, "--yes")
    assert result.code == 0, result.text
    assert orphan_pid not in standins()
    nothing_left(rayctl_home, leases)
    again = cli("down", config_path, "--yes")
    assert again.code == 0 and "nothing to do" in again.out


def test_a_node_that_cannot_be_stopped_is_named_and_kept_the_others_go(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, fine = node(provider, NodeKind.WORKER), node(provider, NodeKind.WORKER)
    real_stop = detached.stop

    def stop(runner, slot, **kwargs):  # type: ignore[no-untyped-def]
        if slot == stuck.id:
            return CommandResult(1, "kill: operation not permitted")
        return real_stop(runner, slot, **kwargs)

    monkeypatch.setattr(detached, "stop", stop)
    with pytest.raises(TerminationFailed) as failed:
        provider.terminate_nodes([stuck.id, fine.id])
    assert list(failed.value.failed) == [stuck.id]
    assert "operation not permitted" in failed.value.failed[stuck.id]
    assert [n.id for n in provider.list_nodes()] == [stuck.id]  # its record stays
    assert provider.node_home(stuck.id).is_dir() and not provider.node_home(fine.id).exists()


def test_down_fails_on_a_stuck_node_and_forgets_it_with_force(
    provider: LocalProvider,
    cli,
    config_path: Path,
    rayctl_home: Path,
    leases: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node(provider, NodeKind.HEAD)
    stuck = node(provider, NodeKind.WORKER)
    real_stop = detached.stop
    monkeypatch.setattr(
        detached,
        "stop",
        lambda runner, slot, **kw: (
            CommandResult(1, "stuck") if slot == stuck.id else real_stop(runner, slot, **kw)
        ),
    )
    result = cli("down", config_path, "--yes")
    assert result.code == 3 and stuck.id in result.err and "--force" in result.err
    assert [n.id for n in provider.list_nodes()] == [stuck.id]

    forced = cli("down", config_path, "--yes", "--force", "--json")
    assert forced.code == 0, forced.text
    reported = json.loads(forced.out)
    assert reported["may_remain"] == [
        {
            "id": stuck.id,
            "address": stuck.internal_ip,
            "why": f"could not stop node {stuck.id}: exit 1:\nstuck",
        }
    ]
    nothing_left(rayctl_home, leases)  # record, lease and home forgotten


def test_nodes_json_is_replaced_durably(
    provider: LocalProvider, file_events: list[tuple[str, str]]
) -> None:
    events = file_events
    node(provider, NodeKind.HEAD)
    state = provider.state_dir / "nodes.json"
    assert events == [
        ("fsync", f"{state}.tmp"),
        ("replace", str(state)),
        ("fsync", str(provider.state_dir)),
    ]


@pytest.mark.parametrize(
    ("content", "salvaged"),
    [
        ('{"worker-1": {"id": "worker-1", "node_type"', []),  # cut short
        ("", []),
        ('{"worker-1": {"id": "worker-1", "ip": "127.0.0.9"}}', [("worker-1", "127.0.0.9")]),
        ("[1, 2]", []),
    ],
)
def test_a_corrupted_nodes_json_is_a_clear_error_until_down_force(
    provider: LocalProvider,
    cli,
    config_path: Path,
    rayctl_home: Path,
    leases: Path,
    content: str,
    salvaged: list[tuple[str, str]],
) -> None:
    node(provider, NodeKind.HEAD)
    state = provider.state_dir / "nodes.json"
    state.write_text(content)
    with pytest.raises(StateCorrupted) as corrupted:
        provider.list_nodes()
    assert corrupted.value.nodes == salvaged
    copy = Path(corrupted.value.copy)
    assert copy.read_text() == content and state.read_text() == content

    for args in (("status", config_path), ("down", config_path, "--yes"), ("up", config_path)):
        result = cli(*args)
        assert result.code == 3, (args, result.text)
        assert "internal error" not in result.err
        for words in (str(state), str(copy), "down --force"):
            assert words in result.err.replace("\n", ""), (args, result.err)
    assert state.read_text() == content  # nothing was changed

    forced = cli("down", config_path, "--yes", "--force", "--json")
    assert forced.code == 0, forced.text
    remain = json.loads(forced.out)["may_remain"]
    assert [(r["id"], r["address"]) for r in remain] == (salvaged or [("unknown", "")])
    assert all(str(copy) in r["why"] for r in remain)
    assert not state.exists()
    assert copy.read_text() == content  # kept for the user
    # with `up`'s record, which keeps the cluster listed while its nodes may remain
    record = provider.state_dir / "cluster.json"
    assert sorted(provider.state_dir.iterdir()) == sorted([copy, record])
    assert cli("status", config_path).code == 4  # no nodes any more
    assert cli("down", config_path, "--yes").code == 0  # nothing left to remove: forgotten
    assert list(provider.state_dir.iterdir()) == [copy]


def test_ports_for_one_start_are_distinct_and_prefer_the_given_one() -> None:
    """Ray refuses a start whose components share a port: ports chosen together never repeat
    (each stays bound until all are chosen), and a preferred port that is taken gives way."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        ports = _free_ports([("", 0)] * 300 + [("127.0.0.1", busy)])
    assert len(set(ports)) == len(ports)
    assert ports[-1] != busy
    with socket.socket() as probe:  # a free preferred port is the one given
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert _free_ports([("127.0.0.1", free)]) == [free]
