"""`rayctl up` and `rayctl down`."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import typer
from pydantic import BaseModel

from rayctl.api import Cluster
from rayctl.cli.output import (
    CONFIG_ARG,
    CONFIG_FILE_ARG,
    JSON_OPT,
    NAME_OPT,
    DownProgress,
    UpProgress,
    confirm,
    emit,
    err,
    home,
    load,
    load_file,
    out,
    styled,
)
from rayctl.config.loader import LoadedConfig, check_autostop, in_docker
from rayctl.config.schema import AutostopSettings
from rayctl.errors import RayctlError, StateCorrupted
from rayctl.ops import down as down_op
from rayctl.ops.head import AutoscalerState, autoscaler_note, stopped_autoscaler_hint
from rayctl.paths import log_dir
from rayctl.providers.base import NodeKind
from rayctl.providers.registry import make_provider, specs
from rayctl.runtime.bootstrap import Outcome


class NodeFailure(BaseModel):
    node_id: str
    stage: str
    detail: str  # the failing output's tail


class UpResult(BaseModel):
    cluster_name: str
    provider: str
    head_id: str
    head_ip: str
    workers: int  # workers bootstrapped by this `up` (each type's min_workers)
    changed: bool
    elapsed_s: float
    outcomes: dict[str, str]  # node id -> started, restarted, set up again, unchanged
    created: list[str]
    replaced: list[str]  # terminated for a new launch (changed node_config or type)
    failed: list[NodeFailure]
    logs: str  # where the nodes' setup logs are
    autoscaler: AutoscalerState  # started (this config), restored (the previous one), off
    autoscaler_note: str | None  # after a failure: what runs, or how to start it


def up(
    config: Path = CONFIG_FILE_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before replacing nodes."),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once workers are started, before they join Ray."
    ),
    autostop: float | None = typer.Option(
        None,
        "--autostop",
        metavar="MINUTES",
        help="Stop the cluster once it has been idle this long (no job, no pending work, no "
        "busy node); overrides rayctl.autostop. Fractions allowed.",
    ),
    autostop_down: bool = typer.Option(
        False, "--down", help="With --autostop: remove the cluster (as `rayctl down`) instead."
    ),
    cluster_name: str | None = NAME_OPT,
    json_output: bool = JSON_OPT,
) -> None:
    """Create or update a cluster: the head node and each type's min_workers."""
    loaded = _with_autostop(load_file(config, cluster_name), autostop, autostop_down)
    for line in loaded.warnings:
        err.print(f"warning: {line}", markup=False)
    started = time.monotonic()
    err.print(
        styled("Bringing up cluster ", (loaded.name, "bold"), f" ({loaded.config.provider.type})")
    )
    if not loaded.config.rayctl.security.ray_token_auth:
        err.print(
            "warning: Ray token authentication is off (rayctl.security.ray_token_auth: "
            "false): anyone who reaches this cluster's Ray ports can run code on its nodes",
            markup=False,
        )
    with UpProgress("Bootstrapping") as display:
        report = Cluster(loaded, home=home()).up(
            on_stage=display,
            confirm=lambda q: confirm(q, assume_yes=yes),
            wait=not no_wait,
            check=False,  # failed nodes are shown with the result, then fail the command
        )
    result = UpResult(
        cluster_name=loaded.name,
        provider=loaded.config.provider.type,
        head_id=report.head.id,
        head_ip=report.head.internal_ip,
        workers=len(report.outcomes) - 1 if report.head.id in report.outcomes else 0,
        changed=report.changed,
        elapsed_s=round(time.monotonic() - started, 2),
        outcomes={node_id: o.value for node_id, o in report.outcomes.items()},
        created=report.created,
        replaced=report.replaced,
        failed=[
            NodeFailure(node_id=f.node_id, stage=f.stage, detail=f.detail) for f in report.failed
        ],
        logs=str(log_dir(home(), loaded.name)),
        autoscaler=report.autoscaler,
        autoscaler_note=(
            autoscaler_note(loaded, report.autoscaler)
            if report.autoscaler is not AutoscalerState.STARTED
            else None
        ),
    )
    emit(result, lambda r: _render_up(r, config), as_json=json_output)
    if result.failed:
        raise RayctlError(
            f"{len(result.failed)} node(s) failed (setup logs in {result.logs}). Fix the config "
            f"and run `rayctl up {config}` again, or remove everything with "
            f"`rayctl down {config}`."
        )


def _with_autostop(loaded: LoadedConfig, minutes: float | None, down: bool) -> LoadedConfig:
    """The config with `--autostop MINUTES [--down]` in place of its rayctl.autostop."""
    if minutes is None:
        if down:
            raise typer.BadParameter("--down goes with --autostop MINUTES", param_hint="--down")
        return loaded
    if not 0 < minutes < math.inf:  # also refuses nan
        raise typer.BadParameter("must be a number of minutes above 0", param_hint="--autostop")
    settings = AutostopSettings(idle_minutes=minutes, down=down)
    problem = check_autostop(
        settings, specs()[loaded.config.provider.type], docker=in_docker(loaded.config)
    )
    if problem:
        raise typer.BadParameter(problem, param_hint="--autostop")
    rayctl = loaded.config.rayctl.model_copy(update={"autostop": settings})
    return dataclasses.replace(loaded, config=loaded.config.model_copy(update={"rayctl": rayctl}))


def _render_up(result: UpResult, config: Path) -> None:
    if result.failed:
        for failure in result.failed:
            err.print(f"node {failure.node_id} failed while {failure.stage}", style="red")
            err.print(failure.detail)
    if result.autoscaler_note:
        err.print(result.autoscaler_note, style="bold yellow")
    if result.failed:
        return
    workers = result.workers
    summary = f"head {result.head_ip} + {workers} worker{'s' * (workers != 1)}"
    if not result.changed:
        out.print(f"Cluster '{result.cluster_name}' is up to date ({summary}); nothing changed.")
        return
    counts: dict[str, int] = {}
    for outcome in result.outcomes.values():
        if outcome != Outcome.UNCHANGED:
            counts[outcome] = counts.get(outcome, 0) + 1
    parts = [f"{n} {what}" for what, n in counts.items()]
    if result.replaced:
        parts.append(f"{len(result.replaced)} replaced")
    done = ", ".join(parts)
    out.print(
        f"Cluster '{result.cluster_name}' is up ({summary}) in {result.elapsed_s:.1f} s: {done}."
    )
    # hints, not the result: they go where progress goes, and work from any directory
    err.print(f"Next: `rayctl submit {config} YOUR_PROGRAM.py`, `rayctl status {config}`,")
    err.print(f"      `rayctl attach {config}`, `rayctl down {config}`")


class MayRemain(BaseModel):
    id: str
    address: str  # where to find it (empty when even that is unknown)
    why: str


class DownResult(BaseModel):
    cluster_name: str
    removed: list[str]  # ids of the nodes terminated
    kept_head: bool
    elapsed_s: float
    may_remain: list[MayRemain] = []  # --force: forgotten without confirming they are gone
    cleanup_error: str | None = None  # --force: per-cluster resources that may be left
    autoscaler_hint: str | None = None  # --workers-only: the head's autoscaler is off


def down(
    config: Path = CONFIG_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    workers_only: bool = typer.Option(False, "--workers-only", help="Keep the head node."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Forget nodes that cannot be terminated (and state that cannot be read) instead "
        "of failing; lists what may remain, to remove by hand.",
    ),
    cluster_name: str | None = NAME_OPT,
    json_output: bool = JSON_OPT,
) -> None:
    """Terminate a cluster's nodes and confirm nothing of it is left. Safe to repeat. A
    config that no longer validates still works if it names a cluster `up` recorded."""
    loaded = load(config, cluster_name, record_if_invalid=True)
    cluster = Cluster(loaded, home=home())
    provider = make_provider(loaded.config, home=home())
    try:
        nodes = cluster.nodes()
        targets = [n for n in nodes if not workers_only or n.kind is NodeKind.WORKER]
        question = f"Terminate {len(targets)} node(s) of cluster '{loaded.name}'?"
    except StateCorrupted:
        if not force:
            raise
        targets = []
        question = f"Forget the unreadable state of cluster '{loaded.name}'?"
        nodes = None
    started = time.monotonic()
    if nodes is not None and not targets:
        if workers_only:  # nothing to do; the head's autoscaler is left as it is
            report = down_op.DownReport(removed=[], kept_head=True)
        else:  # nothing to ask about; `down` still cleans up, under the cluster's lock
            report = cluster.down(force=force)
    else:
        if not confirm(question, assume_yes=yes):
            raise typer.Exit(1)
        with DownProgress(f"Taking down cluster {loaded.name}") as display:
            display.expect(targets)
            report = cluster.down(workers_only=workers_only, force=force, on_stage=display)
    result = DownResult(
        cluster_name=loaded.name,
        removed=[n.id for n in report.removed],
        kept_head=report.kept_head,
        elapsed_s=round(time.monotonic() - started, 2),
        may_remain=[MayRemain(id=r.id, address=r.address, why=r.why) for r in report.may_remain],
        cleanup_error=report.cleanup_error,
        # --workers-only stops the head's autoscaler (it would replace the workers): say so
        autoscaler_hint=stopped_autoscaler_hint(loaded, provider) if workers_only else None,
    )
    emit(result, _render_down, as_json=json_output)


def _render_down(result: DownResult) -> None:
    if not result.removed and not result.may_remain:
        what = "workers" if result.kept_head else "nodes"
        out.print(f"Cluster '{result.cluster_name}' has no {what}; nothing to do.")
    elif not result.may_remain:
        kept = " (head kept)" if result.kept_head else "; nothing is left"
        out.print(
            f"Cluster '{result.cluster_name}': terminated {len(result.removed)} node(s) in "
            f"{result.elapsed_s:.1f} s{kept}."
        )
    else:
        out.print(
            f"Cluster '{result.cluster_name}': terminated {len(result.removed)} node(s); "
            f"forgot {len(result.may_remain)} that may remain (remove them by hand):"
        )
        for node in result.may_remain:
            where = f" at {node.address}" if node.address else ""
            out.print(f"  {node.id}{where}: {node.why}")
    if result.cleanup_error:
        out.print(f"Cleanup left things behind: {result.cleanup_error}")
    if result.autoscaler_hint:
        err.print(result.autoscaler_hint, style="bold yellow")
