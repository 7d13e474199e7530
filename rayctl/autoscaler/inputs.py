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
from rayctl.config.yaml_positions import Path as KeyPath


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
    problems = _node_problems(demand.nodes, config)
    if problems:
        raise report.error(problems)
    return demand


def _node_problems(nodes: list[NodeEntry], config: ClusterConfig) -> list[tuple[KeyPath, str]]:
    """What the schema cannot see: unknown types, ids given twice, a second head, and more
    of a resource available than the node has."""
    types = config.available_node_types
    problems: list[tuple[KeyPath, str]] = []
    first: dict[str, int] = {}
    head: int | None = None
    for i, n in enumerate(nodes):
        if n.type not in types:
            hint = suggest(n.type, list(types))
            problems.append(
                (("nodes", i, "type"), f"'{n.type}' is not in the config's node types{hint}")
            )
        if n.id in first:
            problems.append(
                (("nodes", i, "id"), f"'{n.id}' is also the id of nodes[{first[n.id]}]")
            )
        first.setdefault(n.id, i)
        if n.kind == "head" and head is not None:
            problems.append((("nodes", i, "kind"), f"a second head; nodes[{head}] is the head"))
        elif n.kind == "head":
            head = i
        known = types[n.type].resources if n.type in types else None
        total = n.total if n.total is not None else known
        for name, value in (n.available or {}).items() if total is not None else ():
            if value > total.get(name, 0):
                problems.append(
                    (
                        ("nodes", i, "available", name),
                        f"{value:g} available but the node has {total.get(name, 0):g} in total",
                    )
                )
    return problems


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
