"""The live view of `up` and `down` as a person sees it on a terminal (a real one: tmux, whose
screen the test reads while the command runs and after it ended), and the plain lines a pipe
gets instead."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RAYCTL = Path(sys.executable).parent / "rayctl"
HEAD_ONLY = {"ray.head.default": {"resources": {"CPU": 1}}}
# A row of the view: id, kind, node_type, ip, stage, elapsed.
ROW = re.compile(r"^((?:head|worker)-\w+) +(head|worker) +(\S+) +(\S+) +(\S+) +(\d+\.\d)s *$")
BOOTSTRAP_STAGES = {"waiting-for-node", "syncing-files", "setting-up", "starting-ray"}
EXIT_MARK = "RAYCTL-EXIT="


def rows(screen: str) -> list[tuple[str, str, str, str]]:
    """(id, kind, node_type, stage) of each row of the view on `screen`."""
    found = [ROW.match(line) for line in screen.splitlines()]
    return [(m[1], m[2], m[3], m[5]) for m in found if m]


class Terminal:
    """A tmux server of this test's own (its socket in the test's directory, so no other tmux
    is touched), a 140x40 session per command run."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "tmux.sock"
        # The server inherits this environment (RAYCTL_HOME); TMUX would point at another one.
        self.env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        self.runs = 0

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=self.env,
            check=True,
        )
        return done.stdout

    def run(self, *command: object, timeout_s: float = 300) -> tuple[int, list[str]]:
        """Run `command` in a new window; its exit code and every screen seen while it ran,
        the last one after it ended."""
        line = shlex.join(map(str, command))
        # A session per run, all kept until close(): killing the last one ends the server,
        # and a new session started meanwhile would meet it exiting.
        self.runs += 1
        view = f"view{self.runs}"
        self.tmux(
            "new-session", "-d", "-s", view, "-x", "140", "-y", "40",
            f"{line}; echo {EXIT_MARK}$?; sleep 600",
        )  # fmt: skip
        screens: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screens.append(self.tmux("capture-pane", "-p", "-t", view))
            ended = re.search(rf"{EXIT_MARK}(\d+)", screens[-1])
            if ended:
                return int(ended[1]), screens
            time.sleep(0.3)
        raise AssertionError(f"{line} did not end in {timeout_s} s; its screen:\n{screens[-1]}")

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=30
        )


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        reason = "tmux is not installed (scripts/test.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    term = Terminal(tmp_path)
    yield term
    term.close()


def test_up_and_down_show_a_live_per_node_view_on_a_terminal(make_cluster, terminal: Terminal):
    cluster = make_cluster("live", max_workers=1)  # a head and one worker
    code, screens = terminal.run(RAYCTL, "up", cluster.config, "--yes")
    final = screens[-1]
    assert code == 0, final
    # One view, redrawn in place, left in its final state: every node ready, the total time.
    assert {(kind, node_type, stage) for _, kind, node_type, stage in rows(final)} == {
        ("head", "ray.head.default", "ready"),
        ("worker", "ray.worker.cpu", "ready"),
    }
    assert len(rows(final)) == 2 and final.count("Bootstrapping:") == 1
    assert re.search(r"Bootstrapping: 2/2 nodes done, \d+\.\d s elapsed", final), final
    assert f"Cluster '{cluster.name}' is up (head" in final
    # While it ran, nodes showed the stages they were in (not SSH's: local nodes have none).
    seen = {stage for screen in screens[:-1] for *_, stage in rows(screen)}
    assert seen & BOOTSTRAP_STAGES, screens
    assert re.search(r"Bootstrapping: [01]/2 nodes done", "\n".join(screens[:-1]))
    assert not any("waiting-for-ssh" in screen for screen in screens)
    node_ids = {node_id for node_id, *_ in rows(final)}

    code, screens = terminal.run(RAYCTL, "down", cluster.config, "--yes")
    final = screens[-1]
    assert code == 0, final
    assert {(node_id, stage) for node_id, *_, stage in rows(final)} == {
        (node_id, "terminated") for node_id in node_ids
    }
    assert re.search(
        rf"Taking down cluster {cluster.name}: 2/2 nodes done, \d+\.\d s elapsed", final
    ), final
    assert "nothing is left" in final
    seen = {stage for screen in screens[:-1] for *_, stage in rows(screen)}
    assert seen & {"waiting", "stopping-autoscaler", "stopping-jobs", "terminating"}, screens


def test_a_pipe_gets_plain_lines(make_cluster):
    cluster = make_cluster("plain", available_node_types=HEAD_ONLY)

    def rayctl(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RAYCTL, *map(str, args)], capture_output=True, text=True, timeout=300
        )

    up = rayctl("up", cluster.config, "--yes")
    assert up.returncode == 0, up.stderr
    head = re.compile(r"^\[ *\d+\.\ds\] (head-\w+) \(head, ray\.head\.default\): (\S+)$")
    stages = [m[2] for m in map(head.match, up.stderr.splitlines()) if m]
    assert stages[0] == "waiting-for-node" and stages[-1] == "ready", up.stderr
    assert "\x1b" not in up.stderr + up.stdout and "Bootstrapping:" not in up.stderr

    down = rayctl("down", cluster.config, "--yes")
    assert down.returncode == 0, down.stderr
    stages = [m[2] for m in map(head.match, down.stderr.splitlines()) if m]
    assert stages == ["stopping-autoscaler", "stopping-jobs", "terminating", "terminated"]
    assert "\x1b" not in down.stderr + down.stdout and "Taking down" not in down.stderr
