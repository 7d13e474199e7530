"""`rayctl monitor`: the autoscaler loop (run on the head by `rayctl up`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from rayctl.cli.output import CONFIG_ARG


def monitor(config: Path = CONFIG_ARG) -> None:
    """Run the autoscaler on the head node until SIGTERM (started by `rayctl up`)."""
    from rayctl.autoscaler.monitor import run_monitor
    from rayctl.ops.autostop import autostop
    from rayctl.paths import rayctl_home

    raise typer.Exit(run_monitor(config, autostop=partial(autostop, home=rayctl_home())))
