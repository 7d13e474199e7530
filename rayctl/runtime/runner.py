"""Command runners: how rayctl runs commands and moves files on a node."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shlex
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rayctl.errors import RayctlError
from rayctl.runtime.sync_rules import SyncRules

TAIL_LINES = 40


class NodeUnreachable(RayctlError):
    """The runner cannot reach the node at all (gone, down, or refusing us)."""


class TransferError(RayctlError):
    """A file transfer to a reachable node failed (permissions, disk full, ...)."""


class TunnelRefused(RayctlError):
    """Nothing accepted a connection to the port a tunnel asked the node for."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    tail: str  # the last TAIL_LINES lines of combined stdout and stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandRunner(Protocol):
    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stream: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run `command` with bash on the node. A non-zero exit is a result; only a node that
        cannot be reached raises (NodeUnreachable)."""

    def put(self, local: str, remote: str) -> None:
        """Copy a local file or directory to `remote` on the node (parents created)."""

    def sync(
        self,
        local_dir: str,
        remote_dir: str,
        exclude: Sequence[str] = (),
        filters: Sequence[str] = (),
    ) -> None:
        """Make `remote_dir` hold `local_dir`'s contents, skipping what rsync would skip with
        `--exclude` for each of `exclude` and `--filter 'dir-merge,- NAME'` for each of
        `filters` (file names such as ".gitignore"; see sync_rules)."""

    def get(self, remote: str, local: str) -> None:
        """Copy a file or directory from the node to `local` (a directory's contents go into
        `local`, parents created)."""

    def interactive(
        self, command: str | None, *, env: Mapping[str, str] | None = None, terminal: bool = True
    ) -> int:
        """Run `command` (a login shell when None) with this process's stdin, stdout and
        stderr; its exit code. With `terminal`, on a terminal of its own when stdin is one
        (as `ssh -t`); without, stdout and stderr always stay apart (as `ssh HOST CMD`)."""


def put_private(runner: CommandRunner, files: Mapping[str, str]) -> None:
    """Copy local files (secrets: keys, tokens) to paths relative to the node user's home, in
    directories only that user can enter (0700), as files only that user can read (0600)."""
    dirs = sorted({posixpath.dirname(remote) for remote in files.values()})
    quoted = " ".join(shlex.quote(d) for d in dirs)
    made = runner.run(f"umask 077 && mkdir -p {quoted} && chmod 700 {quoted}")
    if not made.ok:
        raise TransferError(f"could not make {quoted} on the node:\n{made.tail}")
    for local, remote in files.items():
        runner.put(local, f"~/{remote}")
    kept = runner.run("chmod 600 " + " ".join(shlex.quote(r) for r in files.values()))
    if not kept.ok:
        raise TransferError(f"could not make the copied secrets private:\n{kept.tail}")


class LocalRunner:
    """Runs on this machine, inside a node's own home directory: `~` on the node is `home`."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self._env = dict(env or {})

    def _require_home(self) -> None:
        # The provider creates a node's home with the node; never re-create a removed one,
        # or a command racing `down` would start things on a node that no longer exists.
        if not self.home.is_dir():
            raise NodeUnreachable(f"node home {self.home} does not exist (node terminated?)")

    def _environ(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), **self._env, **(extra or {})}

    def expand(self, remote: str) -> Path:
        if remote == "~" or remote.startswith("~/"):
            return self.home / remote[2:]
        return Path(remote)

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stream: Callable[[str], None] | None = None,
    ) -> CommandResult:
        self._require_home()
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.home,
            env=self._environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # so a timeout can stop the command's whole group
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill) if timeout_s else None
        if timer:
            timer.start()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                tail.append(line.rstrip("\n"))
                if stream:
                    stream(line.rstrip("\n"))
            code = proc.wait()
        except BaseException:  # interrupted (Ctrl-C, a signal): end what we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            if timer:
                timer.cancel()
        if timed_out.is_set():
            tail.append(f"(timed out after {timeout_s:g} s)")
            code = 124
        return CommandResult(code, "\n".join(tail))

    def put(self, local: str, remote: str) -> None:
        self._require_home()
        target = self.expand(remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(local):
            shutil.copytree(local, target, dirs_exist_ok=True)
        else:
            shutil.copy2(local, target)

    def sync(
        self,
        local_dir: str,
        remote_dir: str,
        exclude: Sequence[str] = (),
        filters: Sequence[str] = (),
    ) -> None:
        self._require_home()
        target = self.expand(remote_dir)
        target.mkdir(parents=True, exist_ok=True)
        rules = SyncRules(local_dir, exclude, filters)
        shutil.copytree(local_dir, target, ignore=rules.ignore, dirs_exist_ok=True)

    def get(self, remote: str, local: str) -> None:
        self._require_home()
        source = self.expand(remote)
        if not source.exists():
            raise TransferError(f"{remote} does not exist on the node")
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, local, dirs_exist_ok=True)
        else:
            shutil.copy2(source, local)

    def interactive(
        self, command: str | None, *, env: Mapping[str, str] | None = None, terminal: bool = True
    ) -> int:
        self._require_home()  # `terminal` needs nothing here: this process's terminal is the node's
        argv = ["bash", "-l"] if command is None else ["bash", "-c", command]
        return subprocess.call(argv, cwd=self.home, env=self._environ(env))
