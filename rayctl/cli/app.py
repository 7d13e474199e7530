"""The root `rayctl` command: registers the commands and is the single exit path."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer

from rayctl.cli import (
    cluster,
    clusters,
    config_cmds,
    forward,
    jobs,
    monitor,
    plan,
    shell,
    status,
)
from rayctl.cli.output import err, out, styled
from rayctl.cli.passthrough import passes_through_from
from rayctl.errors import ConfigError, Interrupted, RayctlError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="rayctl",
    help="Launch Ray clusters (local processes, SSH hosts, clouds) and autoscale them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _interruptible(command: Callable[P, R]) -> Callable[P, R]:
    """Ctrl-C as an error of rayctl's own: typer would turn it into a silent exit 130,
    dropping what the command noted on its way out (a failed `up`: the autoscaler's state)."""

    @functools.wraps(command)
    def run_command(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted = Interrupted("interrupted")
            for note in getattr(exc, "__notes__", []):
                interrupted.add_note(note)
            raise interrupted from exc

    return run_command


def _register(command: Callable[..., object], name: str | None = None, **options: Any) -> None:
    app.command(name, **options)(_interruptible(command))


_register(cluster.up)
_register(cluster.down)
_register(clusters.clusters)
_register(jobs.submit, cls=passes_through_from(1))  # from SCRIPT on
_register(jobs.logs)
_register(jobs.jobs_, "jobs")
_register(jobs.stop)
_register(forward.dashboard)
_register(forward.port_forward, "port-forward")
_register(shell.attach)
_register(shell.exec_, "exec", cls=passes_through_from(1))  # from CMD on
_register(shell.rsync_up, "rsync-up")
_register(shell.rsync_down, "rsync-down")
_register(status.status)
_register(status.get_head_ip, "get-head-ip")
_register(plan.plan)
_register(config_cmds.validate)
_register(config_cmds.schema)
_register(monitor.monitor, hidden=True)


def _version_line() -> str:
    """rayctl's version and the Ray version it pins (its own package metadata: no Ray import)."""
    pinned = "unknown"
    for requirement in importlib.metadata.requires("rayctl") or []:
        match = re.fullmatch(r"ray(\[[^\]]*\])?\s*==\s*([^\s;]+)", requirement)
        if match:
            pinned = match.group(2)
    return f"rayctl {importlib.metadata.version('rayctl')} (Ray {pinned})"


def _show_version(value: bool) -> None:
    if value:
        out.print(_version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks for unexpected errors (or set RAYCTL_DEBUG=1)."
    ),
    _version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_show_version,
        is_eager=True,
        help="Print rayctl's version and the Ray version it pins, and exit.",
    ),
) -> None:
    if debug:
        os.environ["RAYCTL_DEBUG"] = "1"


def run(argv: list[str]) -> int:
    """Run rayctl with `argv`; returns the exit code. Errors are reported here and only here."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="rayctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ... (exit 2)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"Error: {exc.format_message()}")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt, Interrupted) as exc:
        err.print("Aborted.")
        _print_notes(exc)
        return 130
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem)
        return exc.exit_code
    except RayctlError as exc:
        err.print(styled(("error:", "red"), f" {exc}"))
        _print_notes(exc)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("RAYCTL_DEBUG"):
            traceback.print_exc()
        else:
            err.print(styled(("internal error:", "red"), f" {type(exc).__name__}: {exc}"))
            err.print("Run with --debug for the traceback, and please report it.")
            _print_notes(exc)
        return 1


def _print_notes(exc: BaseException) -> None:
    """What an operation added to an error on its way out: the state it left (a failed
    `up` says whether the autoscaler runs)."""
    for note in getattr(exc, "__notes__", []):
        err.print(note, style="bold yellow")


def main() -> None:
    sys.exit(run(sys.argv[1:]))
