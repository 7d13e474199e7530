"""A detached process can be started again as it was last started (a failed `up` restores
the head's previous autoscaler this way): same script, same environment."""

from __future__ import annotations

import time
from pathlib import Path

from rayctl.runtime import detached
from rayctl.runtime.runner import LocalRunner

SLOT = "probe"


def wait_for_lines(path: Path, count: int, timeout_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {count} line(s)")


def test_restart_runs_the_last_start_again_with_its_environment(tmp_path: Path):
    runner = LocalRunner(tmp_path)
    seen = tmp_path / "seen"
    # Each start appends what it sees, then lives until stopped.
    commands = [f'echo "$GREETING $RAYCTL_PROC" >> {seen}', "exec sleep 300"]
    assert detached.start(runner, SLOT, commands, env={"GREETING": "it's 'quoted'"}).ok
    try:
        assert wait_for_lines(seen, 1) == [f"it's 'quoted' {SLOT}"]
        pid_file = tmp_path / ".rayctl/procs" / SLOT / "pid"
        pid = pid_file.read_text()
        assert detached.restart(runner, SLOT).ok
        assert pid_file.read_text() == pid  # running: left alone
        assert detached.stop(runner, SLOT, grace_s=2).ok
        assert not detached.is_alive(runner, SLOT)

        assert detached.restart(runner, SLOT).ok
        assert wait_for_lines(seen, 2) == [f"it's 'quoted' {SLOT}"] * 2
        assert detached.is_alive(runner, SLOT)
        env_file = tmp_path / ".rayctl/procs" / SLOT / "env.sh"
        assert env_file.stat().st_mode & 0o077 == 0  # it may hold what the process needs
    finally:
        detached.stop(runner, SLOT, grace_s=2)


def test_restart_of_a_slot_that_never_ran_fails(tmp_path: Path):
    result = detached.restart(LocalRunner(tmp_path), SLOT)
    assert not result.ok and result.exit_code == 3
    assert "nothing to restart" in result.tail
