"""`rayctl attach`, `exec`, `rsync-up` and `rsync-down`: a shell, a command (with RAY_ADDRESS
and the cluster's Ray token set, so `ray status` and drivers work there) or files on the
head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from rayctl.cli.output import CONFIG_ARG, NAME_OPT, home, load, out
from rayctl.ops.head import find_head
from rayctl.providers.base import Node
from rayctl.providers.registry import make_provider
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import CommandRunner


@dataclass(frozen=True)
class _Head:
    runner: CommandRunner
    node: Node
    auth: ClusterAuth

    def env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.node.gcs_address}

    def with_ray(self, command: str) -> str:
        """`command` after the cluster's Ray authentication settings (the token's path)."""
        return f"{self.auth.shell_exports()}; {command}"


def _head(config: Path, cluster_name: str | None) -> _Head:
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    head = find_head(provider)
    return _Head(provider.runner(head), head, ClusterAuth.local(loaded.config, home=home()))


def attach(config: Path = CONFIG_ARG, cluster_name: str | None = NAME_OPT) -> None:
    """An interactive shell on the head node."""
    head = _head(config, cluster_name)
    raise typer.Exit(head.runner.interactive(head.with_ray("exec bash -l"), env=head.env()))


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
