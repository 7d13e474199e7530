"""`rayctl plan`: the autoscaler's decision for a config and a demand file."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import BaseModel
from rich.table import Table

from rayctl.autoscaler.inputs import load_demand_file, plan_request
from rayctl.autoscaler.scheduler import ScheduleReply, format_bundle, schedule
from rayctl.cli.output import CONFIG_FILE_ARG, JSON_OPT, emit, load_file, out


class PlannedLaunch(BaseModel):
    node_type: str
    count: int
    reason: str


class PlannedTermination(BaseModel):
    id: str
    reason: str


class PlannedInfeasible(BaseModel):
    bundle: dict[str, float]
    count: int
    reason: str


class Plan(BaseModel):
    launch: dict[str, int]  # node type -> nodes to launch
    launches: list[PlannedLaunch]  # the same, with why, in decision order
    terminate: list[PlannedTermination]
    infeasible: list[PlannedInfeasible]

    @classmethod
    def of(cls, reply: ScheduleReply) -> Plan:
        return cls(
            launch=reply.launch,
            launches=[
                PlannedLaunch(node_type=x.node_type, count=x.count, reason=x.reason)
                for x in reply.launches
            ],
            terminate=[
                PlannedTermination(id=t.id, reason=f"{t.cause.value}: {t.detail}")
                for t in reply.terminate
            ],
            infeasible=[
                PlannedInfeasible(bundle=dict(i.bundle), count=i.count, reason=i.reason)
                for i in reply.infeasible
            ],
        )


def plan(
    config: Path = CONFIG_FILE_ARG,
    demand: Path = typer.Option(..., "--demand", help="Demand file (JSON or YAML)."),
    json_output: bool = JSON_OPT,
) -> None:
    """Run the autoscaler's scheduler on a demand file and print what it would do."""
    loaded = load_file(config)
    reply = schedule(plan_request(loaded.config, load_demand_file(demand, loaded.config)))
    emit(Plan.of(reply), _render, as_json=json_output)


def _render(result: Plan) -> None:
    if not (result.launches or result.terminate or result.infeasible):
        out.print("Nothing to do: every demand fits and no node is due for removal.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("action", "what", "why"):
        table.add_column(column)
    for launch in result.launches:
        table.add_row("launch", f"{launch.count} x {launch.node_type}", launch.reason)
    for term in result.terminate:
        table.add_row("terminate", term.id, term.reason)
    for item in result.infeasible:
        table.add_row("infeasible", f"{item.count} x {format_bundle(item.bundle)}", item.reason)
    out.print(table)
