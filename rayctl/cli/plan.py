"""`rayctl plan`: the autoscaler's decision for a config and a demand file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from rayctl.autoscaler.inputs import load_demand_file, plan_request
from rayctl.autoscaler.scheduler import ScheduleReply, format_bundle, schedule
from rayctl.cli.output import CONFIG_ARG, load, out


def plan(
    config: Path = CONFIG_ARG,
    demand: Path = typer.Option(..., "--demand", help="Demand file (JSON or YAML)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Run the autoscaler's scheduler on a demand file and print what it would do."""
    loaded = load(config)
    reply = schedule(plan_request(loaded.config, load_demand_file(demand, loaded.config)))
    if json_output:
        out.print(json.dumps(reply_json(reply), indent=2), markup=False)
    else:
        _render(reply)


def reply_json(reply: ScheduleReply) -> dict:
    return {
        "launch": reply.launch,
        "terminate": [
            {"id": t.id, "reason": f"{t.cause.value}: {t.detail}"} for t in reply.terminate
        ],
        "infeasible": [
            {"bundle": dict(i.bundle), "count": i.count, "reason": i.reason}
            for i in reply.infeasible
        ],
    }


def _render(reply: ScheduleReply) -> None:
    if not (reply.launches or reply.terminate or reply.infeasible):
        out.print("Nothing to do: every demand fits and no node is due for removal.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("action", "what", "why"):
        table.add_column(column)
    for launch in reply.launches:
        table.add_row("launch", f"{launch.count} x {launch.node_type}", launch.reason)
    for term in reply.terminate:
        table.add_row("terminate", term.id, f"{term.cause.value}: {term.detail}")
    for item in reply.infeasible:
        table.add_row("infeasible", f"{item.count} x {format_bundle(item.bundle)}", item.reason)
    out.print(table)
