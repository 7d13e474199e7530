"""What the scheduler is fed: node types from the config, and a demand file for `plan`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field, NonNegativeFloat, PositiveInt

from rayctl.autoscaler.scheduler import (
    Demand,
    NodeTypeSpec,
    NodeView,
    PlacementGroupDemand,
    PlacementStrategy,
    ScheduleRequest,
)
from rayctl.config.documents import ProblemReport, read_document, suggest
from rayctl.config.schema import ClusterConfig, StrictModel


def node_type_specs(config: ClusterConfig) -> dict[str, NodeTypeSpec]:
    return {
        name: NodeTypeSpec(
            name=name,
            resources=dict(t.resources),
            min_workers=t.min_workers if name in config.worker_types() else 0,
            max_workers=config.type_max_workers(name),
            cost=config.rayctl.node_types[name].cost if name in config.rayctl.node_types else None,
            idle_timeout_s=t.idle_timeout_s,
        )
        for name, t in config.available_node_types.items()
    }


Bundle = dict[str, NonNegativeFloat]


class DemandEntry(StrictModel):
    bundle: Bundle
    count: PositiveInt = 1


class PlacementGroupEntry(StrictModel):
    strategy: PlacementStrategy = Field(strict=False)  # enum by value from JSON/YAML text
    bundles: list[Bundle] = Field(min_length=1)


class NodeEntry(StrictModel):
    id: str
    type: str
    kind: Literal["worker", "head"] = "worker"
    state: Literal["running", "pending"] = "running"
    available: Bundle | None = None  # default: all of its total
    total: Bundle | None = None  # default: its type's resources
    idle_s: NonNegativeFloat = 0


class DemandFile(StrictModel):
    """`rayctl plan --demand FILE`: the cluster's nodes and what is waiting for resources."""

    nodes: list[NodeEntry] = []
    demands: list[DemandEntry] = []
    placement_groups: list[PlacementGroupEntry] = []
    constraints: list[DemandEntry] = []


def load_demand_file(path: Path, config: ClusterConfig) -> DemandFile:
    """Read a demand file (JSON or YAML); errors are located like config errors."""
    shown = str(path)
    doc = read_document(path, shown, empty="the demand file is empty")
    report = ProblemReport(doc, shown, DemandFile)
    try:
        demand = DemandFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise report.validation_error(exc.errors(), doc.data) from None
    types = list(config.available_node_types)
    problems = [
        (
            ("nodes", i, "type"),
            f"'{n.type}' is not in the config's node types{suggest(n.type, types)}",
        )
        for i, n in enumerate(demand.nodes)
        if n.type not in config.available_node_types
    ]
    if problems:
        raise report.error(problems)
    return demand


def plan_request(config: ClusterConfig, demand: DemandFile) -> ScheduleRequest:
    return ScheduleRequest(
        node_types=node_type_specs(config),
        max_workers=config.worker_limit,
        nodes=[
            NodeView(
                id=n.id,
                node_type=n.type,
                is_head=n.kind == "head",
                pending=n.state == "pending",
                available=n.available,
                total=n.total,
                idle_s=n.idle_s,
            )
            for n in demand.nodes
        ],
        demands=[Demand(d.bundle, d.count) for d in demand.demands],
        placement_groups=[
            PlacementGroupDemand(pg.strategy, tuple(pg.bundles)) for pg in demand.placement_groups
        ],
        constraints=[Demand(d.bundle, d.count) for d in demand.constraints],
        upscaling_speed=config.upscaling_speed,
        idle_timeout_s=config.idle_timeout_minutes * 60,
    )
