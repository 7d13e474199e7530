"""Loopback address leases: unique per live node, reclaimed once the owner is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayctl.providers.local import loopback


@pytest.fixture
def leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lease_dir = tmp_path / "leases"
    monkeypatch.setattr(loopback, "LEASE_DIR", lease_dir)
    return lease_dir


def owner(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_leases_are_distinct_and_skip_127_0_0_1(tmp_path: Path, leases: Path):
    addresses = [loopback.lease(owner(tmp_path, f"n{i}")) for i in range(300)]
    assert len(set(addresses)) == 300
    assert addresses[0] == "127.0.0.2" and "127.0.0.1" not in addresses
    assert "127.0.1.1" in addresses  # continues past 127.0.0.254


def test_release_frees_the_address_for_reuse(tmp_path: Path, leases: Path):
    first = owner(tmp_path, "a")
    address = loopback.lease(first)
    loopback.release(address, owner(tmp_path, "other"))  # not the holder: no effect
    assert loopback.lease(owner(tmp_path, "b")) != address
    loopback.release(address, first)
    assert loopback.lease(owner(tmp_path, "c")) == address


def test_a_lease_whose_owner_vanished_is_reclaimed(tmp_path: Path, leases: Path):
    gone = owner(tmp_path, "gone")
    address = loopback.lease(gone)
    gone.rmdir()  # the node's directory disappeared without a release (a crash)
    assert loopback.lease(owner(tmp_path, "next")) == address
