"""The ssh provider's host pool (run on the head by python3; here in-process, in a temp home)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayctl.providers.ssh import pool as ssh_pool
from rayctl.runtime.head_paths import pool_dir

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
