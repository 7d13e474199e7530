"""The ssh provider's host pool (run on the head by python3; here in-process, in a temp home)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rayctl.ops.down import down
from rayctl.providers.base import NodeKind, Tag
from rayctl.providers.registry import load_config, make_provider
from rayctl.providers.ssh import claims
from rayctl.providers.ssh import pool as ssh_pool
from rayctl.providers.ssh.instances import SSHProvider
from rayctl.runtime import detached
from rayctl.runtime.head_paths import (
    CLAIMS_DIR,
    MONITOR_SLOT,
    cluster_secrets,
    pool_dir,
    released_with_host,
)
from rayctl.runtime.runner import LocalRunner
from tests.conftest import wait_for

POOL = pool_dir("c")  # as the provider names it
HOSTS = ["10.0.0.3", "10.0.0.4", "10.0.0.5"]
RECORD = {"node_type": "w", "kind": "worker", "tags": {"a": "1"}}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def allocate(count: int) -> list[str]:
    """The hosts allocated, in order; each record as the pool holds it."""
    taken = ssh_pool.apply(POOL, "allocate", {"hosts": HOSTS, "count": count, "record": RECORD})
    held = ssh_pool.apply(POOL, "list", {})
    assert all(held[host] == record for host, record in taken.items())
    return list(taken)


def test_allocates_free_hosts_in_list_order_and_never_twice() -> None:
    assert allocate(2) == HOSTS[:2]
    assert allocate(5) == HOSTS[2:]  # only what is free
    assert allocate(1) == []
    held = ssh_pool.apply(POOL, "list", {})
    assert sorted(held) == HOSTS and held[HOSTS[0]]["tags"] == {"a": "1"}


def test_a_host_given_back_goes_to_the_back_of_the_line() -> None:
    allocate(1)
    ssh_pool.apply(POOL, "release", {"hosts": [HOSTS[0]]})
    assert allocate(1) == [HOSTS[1]]  # not the one that was just given back (it may be bad)
    assert allocate(2) == [HOSTS[2], HOSTS[0]]


def test_set_tags_merges_and_clusters_are_separate() -> None:
    allocate(1)
    ssh_pool.apply(POOL, "set-tags", {"host": HOSTS[0], "tags": {"b": "2"}})
    assert ssh_pool.apply(POOL, "list", {})[HOSTS[0]]["tags"] == {"a": "1", "b": "2"}
    assert ssh_pool.apply(pool_dir("other"), "list", {}) == {}


def test_drop_removes_the_state_only_once_no_host_is_held(home: Path) -> None:
    allocate(1)
    ssh_pool.apply(POOL, "drop", {})
    assert (home / ".rayctl/pool/c/hosts.json").exists()
    ssh_pool.apply(POOL, "release", {"hosts": [HOSTS[0]]})
    ssh_pool.apply(POOL, "drop", {})
    assert not (home / ".rayctl/pool/c").exists()
    # Reading a pool that is gone (`status` or `down` of a removed cluster) leaves none.
    assert ssh_pool.apply(POOL, "list", {}) == {}
    assert not (home / ".rayctl/pool/c").exists()


# --- durability and corrupt state ------------------------------------------------------


def test_hosts_json_is_replaced_durably(home: Path, file_events: list[tuple[str, str]]) -> None:
    events = file_events
    allocate(1)
    directory = home / POOL
    state = directory / "hosts.json"
    assert events == [("fsync", f"{state}.tmp"), ("replace", str(state)), ("fsync", str(directory))]


@pytest.mark.parametrize("content", ["", '{"held": {"10.0.0.3": ', "[]", '{"held": 1}'])
def test_a_corrupt_or_empty_hosts_json_is_reported_and_kept_not_read_as_empty(
    home: Path, content: str
) -> None:
    allocate(1)
    state = home / POOL / "hosts.json"
    state.write_text(content)
    # As the provider runs it on the head: a distinct exit code and what to report.
    script = Path(ssh_pool.__file__).read_text()
    env = {**os.environ, "HOME": str(home)}
    for op, args in (("list", {}), ("allocate", {"hosts": HOSTS, "count": 1, "record": RECORD})):
        ran = subprocess.run(
            [sys.executable, "-I", "-S", "-c", script, POOL, op, json.dumps(args)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert ran.returncode == ssh_pool.CORRUPT_EXIT, ran.stderr
        reported = json.loads(ran.stdout.splitlines()[-1])
        assert reported["corrupt"] == str(state)
        assert Path(reported["copy"]).read_text() == content
    assert state.read_text() == content  # nothing handed out, nothing overwritten
    assert len(list(state.parent.glob("hosts.json.corrupt-*"))) == 1  # one copy per content

    ssh_pool.apply(POOL, "forget", {"hosts": []})  # `down --force`: set aside, start afresh
    assert ssh_pool.apply(POOL, "list", {}) == {}
    assert Path(reported["copy"]).read_text() == content


def test_forget_gives_hosts_back_like_release() -> None:
    allocate(2)
    ssh_pool.apply(POOL, "forget", {"hosts": [HOSTS[0]]})
    assert list(ssh_pool.apply(POOL, "list", {})) == [HOSTS[1]]
    assert allocate(1) == [HOSTS[2]]  # the forgotten host goes to the back of the line


# --- through the provider and `down` (the head's shell is a local one here) -----------

HEAD_IP = "10.0.0.2"  # never contacted: every command "on a host" runs locally


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not used\n")
    key.chmod(0o600)
    path = tmp_path / "onprem.yaml"
    path.write_text(
        "cluster_name: c\n"
        f"provider: {{type: ssh, head_ip: {HEAD_IP}, worker_ips: {json.dumps(HOSTS)}}}\n"
        f"auth: {{ssh_user: me, ssh_private_key: {key}}}\n"
        "available_node_types: {head: {resources: {}}, worker: {resources: {}}}\n"
        "head_node_type: head\n"
    )
    return path


@pytest.fixture
def unreachable(home: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Hosts whose shell cannot be reached; the others (and the head) run in `home`."""
    down_hosts: set[str] = set()

    def runner_for(self: SSHProvider, host: str) -> LocalRunner:
        return LocalRunner(home / "gone" if host in down_hosts else home)

    monkeypatch.setattr(SSHProvider, "_runner_for", runner_for)
    return down_hosts


def test_ssh_down_force_releases_an_unreachable_host_and_forgets_a_corrupt_pool(
    ssh_config: Path, home: Path, unreachable: set[str], cli, rayctl_home: Path
) -> None:
    provider = make_provider(load_config(ssh_config).config, home=rayctl_home)
    assert isinstance(provider, SSHProvider)
    provider.create_nodes("head", 1, {Tag.KIND: NodeKind.HEAD.value})
    (worker,) = provider.create_nodes("worker", 1, {Tag.KIND: NodeKind.WORKER.value})
    provider.set_tags(worker.id, {Tag.START_HASH: "h"})  # its Ray was started
    unreachable.add(worker.id)

    failed = cli("down", ssh_config, "--yes")
    assert failed.code == 3 and worker.id in failed.err and "--force" in failed.err
    assert [n.id for n in provider.list_nodes()] == [worker.id]  # still held
    forced = cli("down", ssh_config, "--yes", "--force", "--json")
    assert forced.code == 0, forced.text
    (remains,) = json.loads(forced.out)["may_remain"]
    assert (remains["id"], remains["address"]) == (worker.id, worker.id)
    assert not (home / POOL).exists()  # released, then dropped by cleanup

    provider.create_nodes("head", 1, {Tag.KIND: NodeKind.HEAD.value})
    (home / POOL / "hosts.json").write_text("")
    status = cli("status", ssh_config)
    assert status.code == 3 and "internal error" not in status.err
    said = status.err.replace("\n", "")
    assert f"{home / POOL / 'hosts.json'} on the head {HEAD_IP}" in said
    assert "down --force" in said
    forced = cli("down", ssh_config, "--yes", "--force", "--json")
    assert forced.code == 0, forced.text
    remain = json.loads(forced.out)["may_remain"]
    assert [r["id"] for r in remain] == [HEAD_IP, *HOSTS]  # which it held is unknown
    assert cli("status", ssh_config).code == 4  # forgotten: no cluster any more


def test_the_heads_monitor_lets_its_own_host_go_only_once_it_has_ended(
    ssh_config: Path, home: Path, unreachable: set[str]
) -> None:
    """Autostop with `down` as the head's monitor runs it: the workers are released, then
    the head, whose claim and the cluster's secrets stay until the monitor has ended; then
    nothing of the cluster is left on the host."""
    loaded = load_config(ssh_config)
    head_home = home / ".rayctl"  # the monitor's RAYCTL_HOME on the head
    provider = make_provider(loaded.config, home=head_home)
    provider.bootstrap()  # claims the head
    provider.create_nodes("head", 1, {Tag.KIND: NodeKind.HEAD.value})
    provider.create_nodes("worker", 2, {Tag.KIND: NodeKind.WORKER.value})
    key = home / cluster_secrets("c") / "ssh_key"  # as `up` leaves it for the monitor
    key.write_text("secret")
    claim = home / CLAIMS_DIR / HEAD_IP
    # A stand-in monitor that, like the real one, ends a moment after SIGTERM (it returns
    # from `down` first), noting which of the head's claim and key it leaves behind.
    note = home / "at-exit"
    on_term = f"sleep 1; ls {claim} {key} > {note}; exit 0"
    loop = [f"trap '{on_term}' TERM", "while :; do sleep 0.1; done"]
    assert detached.start(LocalRunner(home), MONITOR_SLOT, loop, env={}).ok
    pid = int((home / detached.slot_dir(MONITOR_SLOT).removeprefix("~/") / "pid").read_text())
    try:
        report = down(loaded, home=head_home, by_monitor=True)

        assert sorted(n.id for n in report.removed) == sorted([HEAD_IP, *HOSTS[:2]])
        assert not (home / POOL).exists()
        wait_for(lambda: not key.exists(), 30, "the head's last step")
        assert set(note.read_text().split()) == {str(claim), str(key)}  # both outlived it
        assert [p for p in head_home.rglob("*") if not p.is_dir()] == []  # nor a removed record
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


# --- claims: which cluster holds a host (run on each host; here in-process) -----------------

A = {"cluster": "a", "head": "10.0.0.2"}
ABOUT = {"machine": "laptop"}


def test_a_host_is_claimed_by_one_cluster_at_a_time(home: Path) -> None:
    assert claims.claim(CLAIMS_DIR, "10.0.0.3", A, ABOUT) is None
    assert claims.claim(CLAIMS_DIR, "10.0.0.3", A, ABOUT) is None  # ours already: fine
    # Same name, another head: another cluster.
    other = {"cluster": "a", "head": "10.0.0.9"}
    assert claims.claim(CLAIMS_DIR, "10.0.0.3", other, {}) == {"owner": A, "about": ABOUT}
    path = home / CLAIMS_DIR / "10.0.0.3"
    assert path.stat().st_mode & 0o777 == 0o600
    claims.release(CLAIMS_DIR, "10.0.0.3", other, [])  # not its claim: kept
    assert path.exists()
    claims.release(CLAIMS_DIR, "10.0.0.3", A, [])
    assert claims.claim(CLAIMS_DIR, "10.0.0.3", other, {}) is None


def test_release_removes_what_the_cluster_kept_once_no_claim_of_it_is_left(home: Path) -> None:
    """Hosts sharing one home (NFS): the last host of the cluster to go takes its files."""
    keep = released_with_host("a", "10.0.0.2", head=True)
    for relative in keep:
        (home / relative).mkdir(parents=True)
        (home / relative / "secret").write_text("key")
    claims.claim(CLAIMS_DIR, "10.0.0.2", A, ABOUT)  # the head
    claims.claim(CLAIMS_DIR, "10.0.0.3", A, ABOUT)  # a worker, same home
    claims.release(CLAIMS_DIR, "10.0.0.3", A, released_with_host("a", "10.0.0.3", head=False))
    assert all((home / relative / "secret").exists() for relative in keep)
    claims.release(CLAIMS_DIR, "10.0.0.2", A, keep)
    assert not any((home / relative).exists() for relative in keep)
    assert list((home / CLAIMS_DIR).iterdir()) == []


def test_another_clusters_host_keeps_its_files(home: Path) -> None:
    secrets = released_with_host("a", "10.0.0.3", head=False)
    (home / secrets[0]).mkdir(parents=True)
    claims.claim(CLAIMS_DIR, "10.0.0.3", {"cluster": "b", "head": "10.0.0.8"}, {})
    claims.release(CLAIMS_DIR, "10.0.0.3", A, secrets)
    assert (home / secrets[0]).exists()
