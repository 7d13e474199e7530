"""The node's runtime comes first on PATH for setup commands, start commands, `exec` and
`attach`, on the local provider too: run as `.venv/bin/rayctl` with a PATH that lacks the
venv, `pip`, `python` and `ray` there are still the runtime's (the venv running rayctl).
Initialization commands run before the runtime exists, as in Ray: on the host's PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RUNTIME_BIN = Path(sys.executable).parent  # the venv's, as the installed rayctl runs it
RAYCTL = RUNTIME_BIN / "rayctl"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WHICH = "command -v python pip ray; python -c 'import sys; print(sys.prefix)'"


def rayctl(*args: object, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed rayctl, called by its path from a shell whose PATH has no venv."""
    assert str(RUNTIME_BIN) not in HOST_PATH.split(":")
    return subprocess.run(
        [RAYCTL, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": HOST_PATH},
    )


def runtime_lines() -> list[str]:
    return [f"{RUNTIME_BIN}/{p}" for p in ("python", "pip", "ray")] + [sys.prefix]


def test_commands_on_local_nodes_use_the_runtime(make_cluster, rayctl_home: Path) -> None:
    cluster = make_cluster(
        "path",
        available_node_types={"ray.head.default": {"resources": {"CPU": 1}}},
        initialization_commands=["echo $PATH > ~/init_path"],
        setup_commands=[f"({WHICH}) > ~/setup_which"],
        head_start_ray_commands=[
            f"({WHICH}) > ~/start_which",
            'eval "exec ray start --block --head $RAYCTL_RAY_START_ARGS"',
        ],
    )
    up = rayctl("up", cluster.config, "--yes")
    assert up.returncode == 0, up.stderr
    (home,) = (rayctl_home / "clusters" / cluster.name / "nodes").iterdir()
    assert (home / "setup_which").read_text().splitlines() == runtime_lines()
    assert (home / "start_which").read_text().splitlines() == runtime_lines()
    assert (home / "init_path").read_text().strip() == HOST_PATH

    executed = rayctl("exec", cluster.config, f"{WHICH}; ray status")
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout.splitlines()[:4] == runtime_lines()
    assert "Active:" in executed.stdout

    # attach: a shell that read the login files (Debian's /etc/profile sets PATH), and then
    # rayctl's settings.
    attached = rayctl("attach", cluster.config, stdin=f"{WHICH}\nexit 3\n")
    assert attached.returncode == 3, attached.stderr
    assert attached.stdout.splitlines() == runtime_lines()
