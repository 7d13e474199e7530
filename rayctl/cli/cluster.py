"""`rayctl up` and `rayctl down`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from rayctl import launcher
from rayctl.cli.output import CONFIG_ARG, NAME_OPT, StageDisplay, confirm, err, home, load, out
from rayctl.errors import RayctlError
from rayctl.providers import NodeKind, make_provider
from rayctl.runtime.bootstrap import Outcome


def up(
    config: Path = CONFIG_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before replacing nodes."),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once workers are started, before they join Ray."
    ),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Create or update a cluster: the head node and each type's min_workers."""
    loaded = load(config, cluster_name)
    started = time.monotonic()
    err.print(f"Bringing up cluster [bold]{loaded.name}[/] ({loaded.config.provider.type})")
    with StageDisplay() as display:
        report = launcher.up(
            loaded,
            home=home(),
            on_stage=display,
            confirm=lambda q: confirm(q, assume_yes=yes),
            wait=not no_wait,
        )
    elapsed = time.monotonic() - started
    if report.failed:
        for failure in report.failed:
            err.print(f"[red]node {failure.node_id} failed while {failure.stage}[/]")
            err.print(failure.detail, markup=False)
        logs = launcher.log_dir(home(), loaded.name)
        raise RayctlError(
            f"{len(report.failed)} node(s) failed (setup logs in {logs}). Fix the config and "
            f"run `rayctl up {config}` again, or remove everything with `rayctl down {config}`."
        )
    workers = len(report.outcomes) - 1
    summary = f"head {report.head.internal_ip} + {workers} worker{'s' * (workers != 1)}"
    if not report.changed:
        out.print(f"Cluster '{loaded.name}' is up to date ({summary}); nothing changed.")
        return
    counts: dict[str, int] = {}
    for outcome in report.outcomes.values():
        if outcome is not Outcome.UNCHANGED:
            counts[outcome.value] = counts.get(outcome.value, 0) + 1
    parts = [f"{n} {what}" for what, n in counts.items()]
    if report.replaced:
        parts.append(f"{len(report.replaced)} replaced")
    done = ", ".join(parts)
    out.print(f"Cluster '{loaded.name}' is up ({summary}) in {elapsed:.1f} s: {done}.")
    out.print(f"  rayctl submit {config} examples/spread_tasks.py")
    out.print(f"  rayctl status {config}")


def down(
    config: Path = CONFIG_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    workers_only: bool = typer.Option(False, "--workers-only", help="Keep the head node."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Terminate a cluster's nodes and confirm nothing of it is left. Safe to repeat."""
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    nodes = provider.list_nodes()
    targets = [n for n in nodes if not workers_only or n.kind is NodeKind.WORKER]
    if not targets:
        if not workers_only:
            provider.cleanup()
        what = "workers" if workers_only else "nodes"
        out.print(f"Cluster '{loaded.name}' has no {what}; nothing to do.")
        return
    if not confirm(f"Terminate {len(targets)} node(s) of cluster '{loaded.name}'?", assume_yes=yes):
        raise typer.Exit(1)
    started = time.monotonic()
    with err.status(f"Terminating {len(targets)} node(s)..."):
        report = launcher.down(loaded, home=home(), workers_only=workers_only)
    elapsed = time.monotonic() - started
    kept = " (head kept)" if report.kept_head else "; nothing is left"
    out.print(
        f"Cluster '{loaded.name}': terminated {len(report.removed)} node(s) in "
        f"{elapsed:.1f} s{kept}."
    )
