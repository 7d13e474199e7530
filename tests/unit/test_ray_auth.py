"""A cluster's Ray token: made once with mode 0600, refused when others can read it, copied
to a node as a 0600 file in a 0700 directory, and named by path (never by value) in the
shell line that gives a node's commands token authentication."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rayctl.config.hashes import start_hash
from rayctl.providers import registry
from rayctl.runtime.ray_auth import ClusterAuth, TokenError
from rayctl.runtime.runner import LocalRunner


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config(**rayctl: object):
    return registry.validate(
        {
            "cluster_name": "c1",
            "provider": {"type": "local"},
            "available_node_types": {"h": {}},
            "head_node_type": "h",
            "rayctl": rayctl,
        }
    )


def test_the_token_is_0600_from_its_creation_and_kept(tmp_path, monkeypatch):
    modes_at_fsync: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            modes_at_fsync.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    old_umask = os.umask(0)  # what the mode is given at creation decides alone
    try:
        auth = ClusterAuth.local(config(), home=tmp_path)
        auth.ensure_token()
    finally:
        os.umask(old_umask)
    assert auth.token_file == tmp_path / "clusters" / "c1" / "ray_auth_token"
    token = auth.token_file.read_text()
    assert len(bytes.fromhex(token)) == 32
    assert modes_at_fsync == [0o600]  # while written, before it is renamed into place
    assert mode(auth.token_file) == 0o600
    auth.ensure_token()  # a second `up` keeps the running cluster's token
    assert auth.token_file.read_text() == token
    assert auth.require_token() == auth.token_file


def test_a_token_others_can_read_or_a_missing_one_is_refused(tmp_path):
    auth = ClusterAuth.local(config(), home=tmp_path)
    with pytest.raises(TokenError, match="`rayctl up` makes it there"):
        auth.require_token()
    auth.ensure_token()
    assert auth.token_file is not None
    auth.token_file.chmod(0o640)
    with pytest.raises(TokenError, match="chmod 600"):
        auth.require_token()


def test_put_on_a_node_and_named_by_path(tmp_path):
    auth = ClusterAuth.local(config(), home=tmp_path / "laptop")
    auth.ensure_token()
    assert auth.token_file is not None
    node = tmp_path / "node"
    node.mkdir()
    runner = LocalRunner(node, env={"RAY_AUTH_TOKEN": "inherited"})
    auth.put_token(runner)
    copy = node / ".rayctl" / "clusters" / "c1" / "ray_auth_token"
    assert copy.read_text() == auth.token_file.read_text()
    assert mode(copy) == 0o600 and mode(copy.parent) == 0o700
    line = auth.shell_exports()
    assert auth.token_file.read_text() not in line
    shown = runner.run(f'{line}; echo "$RAY_AUTH_MODE $RAY_AUTH_TOKEN_PATH ${{RAY_AUTH_TOKEN-}}"')
    assert shown.tail == f"token {copy} "


def test_opting_out_turns_ray_auth_off_explicitly(tmp_path):
    on, off = config(), config(security={"ray_token_auth": False})
    assert on.rayctl.security.ray_token_auth
    auth = ClusterAuth.local(off, home=tmp_path)
    auth.ensure_token()
    assert auth.token_file is None and not (tmp_path / "clusters").exists()
    assert auth.require_token() is None
    node = tmp_path / "node"
    node.mkdir()
    runner = LocalRunner(node, env={"RAY_AUTH_TOKEN_PATH": "/elsewhere"})
    auth.put_token(runner)
    assert not (node / ".rayctl").exists()
    # Explicitly disabled: Ray would turn token mode on by itself for a ~/.ray/auth_token.
    shown = runner.run(f'{auth.shell_exports()}; echo "$RAY_AUTH_MODE ${{RAY_AUTH_TOKEN_PATH-}}"')
    assert shown.tail == "disabled "
    # Turning it on or off restarts Ray (the start hash changes).
    assert start_hash(on, "h", head=True) != start_hash(off, "h", head=True)
