"""Commands against a cluster that does not exist: clear answers, nothing created."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO

LOCAL = REPO / "cluster-configs" / "local.yaml"


def test_status_down_and_head_commands_without_a_cluster(cli, rayctl_home: Path):
    status = cli("status", LOCAL, "-n", "nowhere")
    assert status.code == 0 and "has no nodes" in status.out
    down = cli("down", LOCAL, "-n", "nowhere", "--yes")
    assert down.code == 0 and "nothing to do" in down.out
    for args in (("exec", LOCAL, "true"), ("get-head-ip", LOCAL), ("attach", LOCAL)):
        result = cli(*args, "-n", "nowhere")
        assert result.code == 4, result.text
        assert "has no head node" in result.err and "rayctl up" in result.err
    assert not (rayctl_home / "clusters" / "nowhere").exists()


def test_submit_of_a_missing_script_fails_before_touching_the_cluster(cli, rayctl_home: Path):
    result = cli("submit", LOCAL, "-n", "nowhere", "no_such_script.py")
    assert result.code == 1 and "no_such_script.py: no such file" in result.err
