"""`rayctl attach`, `exec`, `rsync-up` and `rsync-down`: a shell, a command (with RAY_ADDRESS
set) or files on the head."""

from __future__ import annotations

from pathlib import Path

import typer

from rayctl.cli.output import CONFIG_ARG, NAME_OPT, home, load, out
from rayctl.ops.head import find_head
from rayctl.providers.base import Node
from rayctl.providers.registry import make_provider
from rayctl.runtime.runner import CommandRunner


def _head(config: Path, cluster_name: str | None) -> tuple[CommandRunner, Node]:
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    head = find_head(provider)
    return provider.runner(head), head


def _ray_env(head: Node) -> dict[str, str]:
    return {"RAY_ADDRESS": head.gcs_address}


def attach(config: Path = CONFIG_ARG, cluster_name: str | None = NAME_OPT) -> None:
    """An interactive shell on the head node."""
    runner, head = _head(config, cluster_name)
    raise typer.Exit(runner.interactive(None, env=_ray_env(head)))


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
    runner, head = _head(config, cluster_name)
    raise typer.Exit(runner.interactive(" ".join(command), env=_ray_env(head), terminal=False))


def rsync_up(
    config: Path = CONFIG_ARG,
    source: Path = typer.Argument(..., help="A local file or directory.", exists=True),
    target: str = typer.Argument(..., help="Where on the head ('~/...' is its home)."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Copy a local file or directory to the head (a directory's contents into TARGET)."""
    runner, _head_node = _head(config, cluster_name)
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
    runner, _head_node = _head(config, cluster_name)
    runner.get(source, str(target))
    out.print(f"head:{source} -> {target}")
