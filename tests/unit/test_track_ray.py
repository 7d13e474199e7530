"""The tracker that follows Ray-style start commands (templates/track_ray.sh.j2), run by the
real detached-slot scripts on this machine. Stand-ins named `raylet` (a copy of `sleep`) and
`gcs_server` (a copy of Python, which takes a while to exit on SIGTERM, as Ray's processes
do) play the Ray that `ray start` without --block leaves in the background: still in the
slot's process group, no longer its leader's children."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayctl.runtime import detached
from rayctl.runtime.runner import LocalRunner
from rayctl.templates import render
from tests.conftest import wait_for

SLOT = "tracked"


@pytest.fixture
def daemons(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", bin_dir / "raylet")
    shutil.copy(os.path.realpath(sys.executable), bin_dir / "gcs_server")
    return bin_dir


# The gcs_server stand-in: on SIGTERM, 6 s of shutting down (more than the ~3 s the stop
# script gives what is left of a group whose leader is gone), then a file says it finished.
SLOW_EXIT = """
import signal, sys, time
def finish(*_):
    time.sleep(6)
    open(sys.argv[1], "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
time.sleep(300)
"""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalRunner]:
    home = tmp_path / "home"
    home.mkdir()
    node = LocalRunner(home)
    yield node
    detached.stop(node, SLOT, grace_s=2)


def leader_of(runner: LocalRunner) -> int:
    return int((runner.home / ".rayctl" / "procs" / SLOT / "pid").read_text())


def group_of(runner: LocalRunner, leader: int | None = None) -> dict[int, str]:
    """Live processes of the slot's process group (its leader's, by default): PID -> name."""
    leader = leader or leader_of(runner)
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == leader and state != "Z":
            found[int(stat.parent.name)] = name
    return found


def start(runner: LocalRunner, commands: list[str]) -> None:
    result = detached.start(runner, SLOT, [*commands, render("track_ray.sh.j2")], env={})
    assert result.ok, result.tail


def daemonize(*argv: object) -> str:
    """What `ray start` without --block does: start a process (Popen returns once it runs
    the program) and return without it."""
    code = "import subprocess, sys; subprocess.Popen(sys.argv[1:])"
    return shlex.join([sys.executable, "-c", code, *map(str, argv)])


def ray_daemons(bin_dir: Path) -> list[str]:
    finished = bin_dir.parent / "gcs_server-finished"
    return [
        daemonize(bin_dir / "gcs_server", "-c", SLOW_EXIT, finished),
        daemonize(bin_dir / "raylet", 300),
    ]


def test_the_slot_lives_while_the_raylet_it_left_lives(runner: LocalRunner, daemons: Path):
    start(runner, ray_daemons(daemons))
    wait_for(lambda: "raylet" in group_of(runner).values(), what="the stand-in raylet")
    time.sleep(1.5)  # past the start commands: the tracker is waiting
    assert detached.is_alive(runner, SLOT)
    raylet = next(pid for pid, name in group_of(runner).items() if name == "raylet")
    os.kill(raylet, signal.SIGKILL)
    wait_for(lambda: not detached.is_alive(runner, SLOT), timeout_s=10, what="the slot to end")
    assert f"Ray's raylet (PID {raylet}) exited" in detached.output_tail(runner, SLOT)


def test_stop_ends_the_ray_it_tracks_and_nothing_else(runner: LocalRunner, daemons: Path):
    # Another raylet on the host, not of this slot's process group, must survive.
    other = subprocess.Popen([daemons / "raylet", "300"], start_new_session=True)
    try:
        start(runner, ray_daemons(daemons))
        wait_for(lambda: len(group_of(runner)) >= 3, what="leader, gcs_server and raylet")
        time.sleep(1.5)
        assert sorted(group_of(runner).values()) == ["bash", "gcs_server", "raylet", "sleep"]
        leader = leader_of(runner)
        result = detached.stop(runner, SLOT, grace_s=10)
        assert result.ok, result.tail
        assert not detached.is_alive(runner, SLOT)
        # The leader stayed until Ray's processes had finished: none was killed midway.
        assert (daemons.parent / "gcs_server-finished").exists()
        assert group_of(runner, leader) == {}
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_start_commands_that_leave_no_raylet_end_the_slot(runner: LocalRunner, daemons: Path):
    idle = "import time; time.sleep(300)"
    start(runner, [daemonize(daemons / "gcs_server", "-c", idle), "echo started"])
    wait_for(lambda: not detached.is_alive(runner, SLOT), timeout_s=10, what="the slot to end")
    tail = detached.output_tail(runner, SLOT)
    assert "started\nrayctl: the start commands returned and left no raylet running" in tail
