"""`up` and `down` of one cluster from this machine run one at a time: a second one waits a
little, then fails naming the first (its command and PID)."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from rayctl.errors import ClusterBusy
from rayctl.ops import lock as lock_module
from rayctl.ops import up as up_module
from rayctl.ops.lock import cluster_lock
from tests.conftest import REPO, write_config

NAME = "locktest"

HOLD = """\
import sys, time
from pathlib import Path
from rayctl.ops.lock import cluster_lock
with cluster_lock(Path(sys.argv[1]), sys.argv[2], "up"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(rayctl_home: Path):
    """Another rayctl process holding the cluster's lock as `up` would."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(rayctl_home), NAME],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_up_or_down_fails_naming_the_first_then_runs_once_it_is_gone(
    holder: subprocess.Popen[str],
    cli,
    rayctl_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lock_module, "WAIT_S", 0.3)

    def launch(*args: object, **kwargs: object) -> None:
        raise AssertionError("`up` went on without the lock")  # and launches nothing

    monkeypatch.setattr(up_module, "_up", launch)
    config = write_config(tmp_path / "cluster.yaml", NAME)
    for command in ("up", "down"):
        result = cli(command, config, "--yes")
        assert result.code == 1, result.text
        said = result.err.replace("\n", " ")
        assert f"`rayctl up` (PID {holder.pid})" in said and NAME in said, said
        assert f"`rayctl {command}` waited" in said
    assert sorted(p.name for p in (rayctl_home / "clusters" / NAME).iterdir()) == [
        "ops.holder",
        "ops.lock",
    ]  # the `up` created nothing

    holder.kill()
    holder.wait()
    result = cli("down", config, "--yes")
    assert result.code == 0, result.text
    assert not (rayctl_home / "clusters" / NAME).exists()  # no lock file left behind


def test_a_lock_file_removed_by_its_holder_is_not_shared_by_the_next_two(
    rayctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished `down` removes the lock file it holds. One that opened that file just
    before must not then hold it alongside a newcomer that made a new one."""
    first = contextlib.ExitStack()
    first.enter_context(cluster_lock(rayctl_home, NAME, "up"))
    real_flock = fcntl.flock
    interleaved: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if not interleaved:  # the holder finishes between our open and our flock
            interleaved.append(fd)
            first.close()
        real_flock(fd, operation)

    monkeypatch.setattr(lock_module.fcntl, "flock", flock)
    with cluster_lock(rayctl_home, NAME, "down", wait_s=1):
        assert interleaved
        with (
            pytest.raises(ClusterBusy, match="`rayctl down`"),
            cluster_lock(rayctl_home, NAME, "up", wait_s=0.3),
        ):
            pass
    assert not (rayctl_home / "clusters" / NAME).exists()
