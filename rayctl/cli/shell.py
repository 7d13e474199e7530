"""`rayctl attach` and `rayctl exec`: a shell or a command on the head, with RAY_ADDRESS set."""

from __future__ import annotations

from pathlib import Path

import typer

from rayctl.cli.output import CONFIG_ARG, NAME_OPT, home, load, out
from rayctl.launcher import find_head
from rayctl.providers import Node, make_provider
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
    command: list[str] = typer.Argument(..., help="Command to run on the head (a shell line)."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Run a shell command on the head; exits with its exit code."""
    runner, head = _head(config, cluster_name)
    result = runner.run(
        " ".join(command), env=_ray_env(head), stream=lambda line: out.print(line, markup=False)
    )
    raise typer.Exit(result.exit_code)
