"""One changing command at a time per cluster on this machine: `up` and `down` hold the
cluster's lock for their whole run, so two never interleave launches and terminations.

The lock is `ops.lock` in the cluster's state dir (rayctl.paths.cluster_dir); its holder
writes its PID and command into `ops.holder`, so a command that cannot get it names the
one in the way. It is always taken before any provider call, and the local provider's own
`nodes.lock` (same directory) only inside provider calls, so the two are always taken in
that order and cannot deadlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from rayctl.errors import ClusterBusy
from rayctl.paths import cluster_dir, write_atomic

LOCK_NAME = "ops.lock"
HOLDER_NAME = "ops.holder"
WAIT_S = 10.0  # how long a second command waits for the first before giving up
_POLL_S = 0.1


@contextlib.contextmanager
def cluster_lock(
    home: Path, cluster_name: str, command: str, wait_s: float | None = None
) -> Iterator[None]:
    """Hold the cluster's lock (waiting at most `wait_s`, else ClusterBusy) for the block."""
    directory = cluster_dir(home, cluster_name)
    fd = _acquire(directory, cluster_name, command, WAIT_S if wait_s is None else wait_s)
    try:
        write_atomic(directory / HOLDER_NAME, json.dumps({"pid": os.getpid(), "command": command}))
        yield
    finally:
        _release(fd, directory)


def _acquire(directory: Path, cluster_name: str, command: str, wait_s: float) -> int:
    path = directory / LOCK_NAME
    deadline = time.monotonic() + wait_s
    while True:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the directory went between the two calls (a `down` ended)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ClusterBusy(_busy_message(directory, cluster_name, command)) from None
            time.sleep(_POLL_S)
            continue
        # A finished `down` removes the file while it holds it: a lock on a removed file
        # excludes nobody, so only one on the file at the path now counts.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)


def _release(fd: int, directory: Path) -> None:
    try:
        path = directory / LOCK_NAME
        mine = os.fstat(fd)
        current = os.stat(path) if path.exists() else None
        # Another command may hold a new lock file if ours was removed under us (a
        # provider's cleanup of the dir): then neither file is ours to remove.
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            # Removed while still held (a waiting command's _acquire notices), so an idle
            # cluster leaves no lock file, and no dir when nothing else of it is here
            # (after `down`, or an `up` that created nothing).
            (directory / HOLDER_NAME).unlink(missing_ok=True)
            os.unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(directory)
    except OSError:
        pass  # the dir went with a provider's cleanup: nothing left to remove
    finally:
        os.close(fd)  # releases the lock


def _busy_message(directory: Path, cluster_name: str, command: str) -> str:
    try:
        holder = json.loads((directory / HOLDER_NAME).read_text())
        who = f"`rayctl {holder['command']}` (PID {holder['pid']})"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another rayctl command"
    return (
        f"{who} is changing cluster '{cluster_name}' from this machine; `rayctl {command}` "
        f"waited for it and gave up. Try again when it has finished (lock: "
        f"{directory / LOCK_NAME})"
    )
