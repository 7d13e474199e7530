"""Commands against a cluster that does not exist: clear answers, nothing created."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

import pytest

from tests.conftest import REPO

LOCAL = REPO / "cluster-configs" / "local.yaml"


RAYCTL = Path(sys.executable).parent / "rayctl"
JOB = "job-20250101-120000-ab12"  # well-formed, so the command goes looking for it


@dataclass(frozen=True)
class NoCluster:
    """How a command answers for a cluster that does not exist: the arguments after the
    command (`{tmp}` is a scratch directory), its exit code, and words of its message."""

    args: tuple[str, ...]
    code: int | None  # None: the command does not need a cluster (see `why`)
    says: str = ""
    why: str = ""


HEAD_MISSING = "has no head node; start it with `rayctl up`"
NO_CLUSTER = {
    "up": NoCluster((), None, why="creates the cluster (tests/integration)"),
    "down": NoCluster((str(LOCAL), "--yes"), 0, "nothing to do"),
    "clusters": NoCluster((), None, why="lists what this machine knows, maybe nothing"),
    # the program's own options pass through: the head is what is missing, not an option
    "submit": NoCluster((str(LOCAL), "{tmp}/job.py", "--tasks", "1"), 4, HEAD_MISSING),
    "logs": NoCluster((str(LOCAL), JOB), 4, HEAD_MISSING),
    "jobs": NoCluster((str(LOCAL),), 4, HEAD_MISSING),
    "stop": NoCluster((str(LOCAL), JOB), 4, HEAD_MISSING),
    "dashboard": NoCluster((str(LOCAL),), 4, HEAD_MISSING),
    "port-forward": NoCluster((str(LOCAL), "8000"), 4, HEAD_MISSING),
    "attach": NoCluster((str(LOCAL),), 4, HEAD_MISSING),
    "exec": NoCluster((str(LOCAL), "ls", "-la"), 4, HEAD_MISSING),
    "rsync-up": NoCluster((str(LOCAL), "{tmp}/job.py", "~/job.py"), 4, HEAD_MISSING),
    "rsync-down": NoCluster((str(LOCAL), "~/job.py", "{tmp}/back.py"), 4, HEAD_MISSING),
    "status": NoCluster((str(LOCAL),), 4, "has no nodes; start it with `rayctl up`"),
    "get-head-ip": NoCluster((str(LOCAL),), 4, HEAD_MISSING),
    "plan": NoCluster((), None, why="plans from a file, for no running cluster"),
    "validate": NoCluster((), None, why="reads only the config"),
    "schema": NoCluster((), None, why="reads nothing"),
}


def _listed_commands() -> list[str]:
    """The commands `rayctl --help` lists, as a new user sees them."""
    shown = subprocess.run([RAYCTL, "--help"], capture_output=True, text=True, timeout=60)
    commands = shown.stdout.split("Commands", 1)[1]
    return re.findall(r"^\W+([a-z][a-z-]+)\s{2,}\S", commands, re.MULTILINE)


def test_every_listed_command_has_its_no_cluster_case():
    assert _listed_commands() == list(NO_CLUSTER)


def _rayctl(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAYCTL_DEBUG"}
    env["RAYCTL_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [RAYCTL, *args], capture_output=True, text=True, timeout=60, env=env, stdin=DEVNULL
    )


@pytest.mark.parametrize("command", list(NO_CLUSTER))
def test_no_such_cluster_and_usage_error_exit_codes(command: str, tmp_path: Path):
    case = NO_CLUSTER[command]
    if case.code is not None:
        (tmp_path / "job.py").write_text("print('hi')\n")
        args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
        result = _rayctl([command, "-n", "nowhere", *args], tmp_path)
        assert result.returncode == case.code, result.stderr
        assert case.says in result.stdout + result.stderr
        assert "internal error" not in result.stderr
        assert not (tmp_path / "home" / "clusters" / "nowhere").exists()
    usage = _rayctl([command, "--bogus"], tmp_path)
    assert usage.returncode == 2, usage.stderr
    assert usage.stderr.startswith("Usage: rayctl") and "No such option: --bogus" in usage.stderr


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
