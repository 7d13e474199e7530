"""`rayctl attach`, `exec`, `rsync-up` and `rsync-down`: a shell, a command (with RAY_ADDRESS,
the cluster's Ray token and the runtime's bin directory first on PATH, so `ray status`,
`python` and drivers there are the cluster's) or files on the head."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import typer

from rayctl.cli.output import CONFIG_ARG, NAME_OPT, home, load, out
from rayctl.ops.head import find_head
from rayctl.providers.base import Node
from rayctl.providers.registry import make_provider
from rayctl.runtime.install import runtime_path_export
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import CommandRunner


@dataclass(frozen=True)
class _Head:
    runner: CommandRunner
    node: Node
    auth: ClusterAuth
    path_export: str  # the runtime's bin directory first on PATH

    def env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.node.gcs_address}

    def exports(self) -> str:
        """The runtime's PATH and the cluster's Ray authentication settings (the token's
        path), as shell commands."""
        return f"{self.path_export}; {self.auth.shell_exports()}"

    def with_ray(self, command: str) -> str:
        return f"{self.exports()}; {command}"

    def login_shell(self) -> str:
        """An interactive bash that reads the login files first and rayctl's exports last:
        a profile that sets PATH (Debian's /etc/profile does) would otherwise undo them."""
        rc = [
            "[ -r /etc/profile ] && . /etc/profile",
            "for f in ~/.bash_profile ~/.bash_login ~/.profile; do",
            '  [ -r "$f" ] && { . "$f"; break; }',
            "done",
            self.exports(),
        ]
        return f"exec bash --rcfile <(printf '%s\\n' {shlex.join(rc)}) -i"


def _head(config: Path, cluster_name: str | None) -> _Head:
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    head = find_head(provider)
    auth = ClusterAuth.local(loaded.config, home=home())
    return _Head(provider.runner(head), head, auth, runtime_path_export(loaded.config))


def attach(config: Path = CONFIG_ARG, cluster_name: str | None = NAME_OPT) -> None:
    """An interactive shell on the head node."""
    head = _head(config, cluster_name)
    raise typer.Exit(head.runner.interactive(head.login_shell(), env=head.env()))


def exec_(
    config: Path = CONFIG_ARG,
    command: list[str] = typer.Argument(
        ...,
        help="Command to run on the head: a shell line, or words joined by spaces as ssh does; "
        "everything from its first word on is the command's own.",
        show_default=False,
    ),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Run a shell command on the head; exits with its exit code.

    It reads this command's stdin; its stdout and stderr stay apart, as with `ssh HOST CMD`."""
    head = _head(config, cluster_name)
    command_line = head.with_ray(" ".join(command))
    raise typer.Exit(head.runner.interactive(command_line, env=head.env(), terminal=False))


def rsync_up(
    config: Path = CONFIG_ARG,
    source: Path = typer.Argument(..., help="A local file or directory.", exists=True),
    target: str = typer.Argument(..., help="Where on the head ('~/...' is its home)."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Copy a local file or directory to the head (a directory's contents into TARGET)."""
    runner = _head(config, cluster_name).runner
    if source.is_dir():
        runner.sync(str(source), target)
    else:
        runner.put(str(source), target)
    out.print(f"{source} -> head:{target}")


def rsync_down(
    config: Path = CONFIG_ARG,
    source: str = typer.Argument(..., help="A file or directory on the head."),
    target: Path = typer.Argument(..., help="Where to put it here."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Copy a file or directory from the head (a directory's contents into TARGET)."""
    _head(config, cluster_name).runner.get(source, str(target))
    out.print(f"head:{source} -> {target}")
