"""The root `rayctl` command: registers the commands and is the single exit path."""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import traceback

import typer

from rayctl.cli import cluster, clusters, config_cmds, jobs, monitor, plan, shell, status
from rayctl.cli.output import err, out, styled
from rayctl.cli.passthrough import passes_through_from
from rayctl.errors import ConfigError, RayctlError

app = typer.Typer(
    name="rayctl",
    help="Launch Ray clusters (local processes, SSH hosts, clouds) and autoscale them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(cluster.up)
app.command()(cluster.down)
app.command()(clusters.clusters)
app.command(cls=passes_through_from(1))(jobs.submit)  # from SCRIPT on
app.command()(jobs.logs)
app.command()(shell.attach)
app.command("exec", cls=passes_through_from(1))(shell.exec_)  # from CMD on
app.command("rsync-up")(shell.rsync_up)
app.command("rsync-down")(shell.rsync_down)
app.command()(status.status)
app.command("get-head-ip")(status.get_head_ip)
app.command()(plan.plan)
app.command()(config_cmds.validate)
app.command()(config_cmds.schema)
app.command(hidden=True)(monitor.monitor)


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
    except (typer.Abort, KeyboardInterrupt) as exc:
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
