"""Commands against a cluster that does not exist: clear answers, nothing created."""

from __future__ import annotations

import json
import subprocess
import sys
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
    assert result.code == 2 and "no_such_script.py: no such file" in result.err


def test_usage_errors_exit_2_through_the_installed_command():
    """typer carries its own click: its usage errors must reach the user as usage errors."""
    rayctl = Path(sys.executable).parent / "rayctl"
    for args, message in (
        (["up", "--bogus"], "No such option: --bogus"),
        (["nope"], "No such command 'nope'"),
        (["up"], "Missing argument"),
    ):
        result = subprocess.run([rayctl, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "internal error" not in result.stderr


def test_validate_as_json_and_as_text_say_the_same(cli):
    as_json = json.loads(cli("validate", LOCAL, "--json").out)
    text = cli("validate", LOCAL).out
    assert as_json["provider"] == "local" and f"on {as_json['provider']}" in text
    for worker in as_json["worker_types"]:
        assert f"{worker['name']} ({worker['min_workers']}..{worker['max_workers']})" in text
    assert f"max_workers {as_json['max_workers']}" in text


def test_the_fake_provider_validates_but_brings_nothing_up(cli, rayctl_home: Path, tmp_path: Path):
    config = tmp_path / "fake.yaml"
    config.write_text("cluster_name: sim\nprovider: {type: fake, boot_s: 1}\n")
    assert cli("validate", config).code == 0
    up = cli("up", config)
    assert up.code == 1 and "simulates nodes and Ray" in up.err
