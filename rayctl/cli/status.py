"""`rayctl status` and `rayctl get-head-ip`."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel
from rich.table import Table

from rayctl.api import Cluster
from rayctl.autoscaler.scheduler import format_bundle
from rayctl.cli.output import CONFIG_ARG, JSON_OPT, NAME_OPT, emit, err, home, load, out, styled
from rayctl.ops.head import find_head
from rayctl.ops.status import ClusterStatus, NodeRow
from rayctl.providers.registry import make_provider

_GIB = 1024**3
_MEMORY = {"memory": "mem", "object_store_memory": "obj"}  # shown in GiB


def status(
    config: Path = CONFIG_ARG,
    json_output: bool = JSON_OPT,
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Nodes with their provider state, bootstrap stage, Ray state, resources and idle time."""
    report = Cluster(load(config, cluster_name), home=home()).status()
    emit(report, _render, as_json=json_output)


def _render(report: ClusterStatus) -> None:
    out.print(
        styled(
            "Cluster ",
            (report.cluster_name, "bold"),
            f": head {report.head_ip}, Ray at {report.gcs_address}"
            + (f", dashboard {report.dashboard_url}" if report.dashboard_url else ""),
        )
    )
    if report.ray_error:
        err.print(f"Ray is not reachable: {report.ray_error}", style="yellow")
    table = Table(box=None, pad_edge=False)
    # the columns are named as the fields of `--json` (resources shows used/total)
    for column in ("id", "kind", "node_type", "state", "stage", "ip", "ray", "resources", "idle_s"):
        table.add_column(column)
    for row in report.nodes:
        table.add_row(
            row.id,
            row.kind,
            row.node_type,
            row.state,
            row.stage,
            row.ip,
            row.ray,
            _resources(row),
            f"{row.idle_s:.0f}s" if row.idle_s is not None else "",
        )
    out.print(table)
    for row in report.nodes:
        if row.error:
            out.print(styled((row.id, "red"), f": {row.error}"))
    _render_node_types(report)
    _render_autoscaler(report)
    _render_autostop(report)


def _render_node_types(report: ClusterStatus) -> None:
    """Every type the autoscaler may launch, also those without nodes."""
    out.print(f"\nnode_types (max_workers {report.max_workers} in all):")
    table = Table(box=None, pad_edge=False)
    for column in ("node_type", "head", "workers", "min_workers", "max_workers"):
        table.add_column(column)
    for row in report.node_types:
        table.add_row(
            row.node_type,
            "yes" if row.head else "",
            str(row.workers),
            str(row.min_workers),
            str(row.max_workers),
        )
    out.print(table)


def _render_autoscaler(report: ClusterStatus) -> None:
    doc = report.autoscaler
    if report.monitor_running:
        out.print(styled("\nautoscaler: running", f" ({doc.error})" if doc and doc.error else ""))
    else:
        out.print(styled(("\n" + (report.autoscaler_hint or "autoscaler: off"), "bold red")))
    if not doc:
        return
    if not report.monitor_running:  # what follows may no longer hold
        out.print("  as of its last report, before it stopped:")
    pending = [f"{d.count} x {format_bundle(d.bundle)}" for d in doc.demands]
    pending += [
        f"placement group {pg.strategy} of {len(pg.bundles)}" for pg in doc.placement_groups
    ]
    pending += [f"request_resources {c.count} x {format_bundle(c.bundle)}" for c in doc.constraints]
    out.print(f"  pending demand: {', '.join(pending) or 'none'}")
    for item in doc.infeasible:
        what = f"{item.count} x {format_bundle(item.bundle)}"
        out.print(styled("  ", ("cannot place", "yellow"), f" {what}: {item.reason}"))
    for name, backoff in doc.backoff.items():
        out.print(
            styled(
                "  ",
                ("backing off", "yellow"),
                f" {name} after {backoff.failures} failed launch(es)",
            )
        )
    now = doc.updated_at
    for event in doc.events[-8:]:
        ago = f"{now - event.at:5.0f}s ago"
        out.print(f"  {ago}  {event.action} {event.what}: {event.reason}")
    for node_id, retry in doc.terminating.items():
        out.print(
            styled(
                "  ",
                ("cannot terminate", "red"),
                f" {node_id} ({retry.reason}): {retry.error}; "
                f"attempt {retry.attempts}, next in {max(0.0, retry.next_at - now):.0f} s",
            )
        )
    for event in doc.failures[-3:]:
        out.print(
            styled(
                (f"  {now - event.at:5.0f}s ago  failed", "red"), f" {event.what}: {event.reason}"
            )
        )


def _render_autostop(report: ClusterStatus) -> None:
    autostop = report.autostop
    if autostop is None:
        return
    action = "remove the cluster" if autostop.down else "stop its nodes"
    after = "" if autostop.idle_minutes is None else f" after {autostop.idle_minutes:g} min idle"
    out.print(f"\nautostop: {action}{after}")
    if autostop.stopped_at is not None:
        stopped = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(autostop.stopped_at))
        out.print(f"  stopped at {stopped}; `rayctl up` starts it again")
    elif autostop.left_s is not None:
        out.print(f"  idle for {autostop.idle_s or 0:.0f} s: stops in {autostop.left_s:.0f} s")
    else:
        out.print(f"  not idle: {autostop.busy}")


def _resources(row: NodeRow) -> str:
    parts = []
    for name, total in sorted(row.resources.items()):
        used = row.used.get(name, 0.0)
        if name in _MEMORY:
            parts.append(f"{_MEMORY[name]} {used / _GIB:.1f}/{total / _GIB:.1f}G")
        else:
            parts.append(f"{name} {used:g}/{total:g}")
    return ", ".join(parts)


class HeadAddress(BaseModel):
    cluster_name: str
    head_id: str
    head_ip: str


def get_head_ip(
    config: Path = CONFIG_ARG, cluster_name: str | None = NAME_OPT, json_output: bool = JSON_OPT
) -> None:
    """Print the head node's IP address."""
    loaded = load(config, cluster_name)
    head = find_head(make_provider(loaded.config, home=home()))
    result = HeadAddress(cluster_name=loaded.name, head_id=head.id, head_ip=head.internal_ip)
    emit(result, lambda r: out.print(r.head_ip), as_json=json_output)
