"""Benchmark: rayctl's scheduler against Ray's own autoscaler schedulers, decision for decision.

Three schedulers get the same generated input and make one launch decision each:

  rayctl  `rayctl.autoscaler.scheduler.schedule` (shapes x counts, groups of identical nodes);
  ray-v1  Ray's `ResourceDemandScheduler.get_nodes_to_launch` (autoscaler v1), fed one
          resource dict per pending bundle, as Ray's monitor feeds it;
  ray-v2  Ray's `autoscaler.v2.scheduler.ResourceDemandScheduler.schedule`, fed requests by
          count and one gang request per placement group, as the GCS reports them.

An input (seeded, deterministic) has 10 worker node types (CPU and high-memory ones, three with
GPUs, all of distinct sizes) plus the head's type; a head node and 100 / 1,000 / 10,000 running
workers over all types, partly busy (free < total); 1,000 / 10,000 / 100,000 pending bundles
over 50 distinct shapes; and the same 8 placement groups (two each of PACK, SPREAD,
STRICT_PACK and STRICT_SPREAD). max_workers and upscaling_speed are set high enough not to
bind, so the three decisions differ only in how they pack. Each scheduler's input is built
from the same data by one small function and never timed; before any timing, every input is
read back from all three formats and checked to be the same (node types, each node's type
and free resources, the bundles of tasks and placement groups).

Before any timing, six tiny inputs show the three decisions side by side: a mixed one,
one where rayctl picked each shape's node type on its own and launched more than Ray, one
where it placed placement groups in the order given (now strict groups go first), and three
where its node types or upscaling_speed cap differed from Ray's (see ray_examples).

For every (nodes, bundles) combination and scheduler it reports the time of one decision (the
median of up to --runs runs, fewer once a scheduler has spent 20 s on that input), the nodes
it launches per type, and the launched capacity (sum of CPU and of GPU over those nodes),
with a check that free plus launched capacity covers the demand in total (CPU, GPU and
memory: necessary, not sufficient, for every bundle to fit). Each timed run is a forked
child, which first builds its scheduler's input, then times the decision alone, and is
killed past --cap seconds: "skipped (> N s)". Combinations run smallest first; one at least
as large in both dimensions as a combination that ran over the cap is not run ("skipped
(> N s at ...: not run)"), except 1,000 x 100,000, which always runs.

It prints the table, the speed ratios (Ray's time / rayctl's; "> N x" where Ray ran over
the cap) and the targets: at 1,000 nodes x 100,000 bundles rayctl at least 10x faster than
Ray's v2 scheduler and under 100 ms per decision; rayctl never launching more CPU or GPU
capacity than Ray for the same input (tiny inputs included); rayctl launching no more nodes
than the fewer of Ray v1's and v2's + 10% (the ratio is printed per input). Progress goes to
stderr. No Ray cluster is started: these are pure in-process calls.

Run from the repository root (on 2 cores the default run takes about 8 minutes, --quick 2):

    .venv/bin/python benchmarks/scheduler.py [--quick] [--json] [--cap 60] [--runs 3]

--quick runs only 100 x 1,000 and 1,000 x 100,000; --json prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, TypeVar

import ray
from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
from ray.autoscaler._private.resource_demand_scheduler import (
    ResourceDemandScheduler as RayV1Scheduler,
)
from ray.autoscaler.tags import (
    NODE_KIND_HEAD,
    NODE_KIND_WORKER,
    TAG_RAY_NODE_KIND,
    TAG_RAY_USER_NODE_TYPE,
)
from ray.autoscaler.v2.instance_manager.config import NodeTypeConfig
from ray.autoscaler.v2.scheduler import ResourceDemandScheduler as RayV2Scheduler
from ray.autoscaler.v2.scheduler import SchedulingRequest
from ray.autoscaler.v2.schema import AutoscalerInstance
from ray.autoscaler.v2.utils import ResourceRequestUtil
from ray.core.generated.autoscaler_pb2 import (
    BundleSelector,
    GangResourceRequest,
    NodeState,
    NodeStatus,
    ResourceRequest,
    ResourceRequestByCount,
)
from ray.core.generated.common_pb2 import Bundle, PlacementStrategy
from ray.core.generated.gcs_pb2 import PlacementGroupTableData
from ray.core.generated.instance_manager_pb2 import Instance, NodeKind

from rayctl.autoscaler import scheduler as rayctl_scheduler

# Which code was measured: rayctl's scheduler changes, so its source is fingerprinted.
VERSIONS = (
    f"ray {ray.__version__}; rayctl scheduler source sha256 "
    + hashlib.sha256(Path(rayctl_scheduler.__file__).read_bytes()).hexdigest()[:12]
)
GIB = 1024**3
Resources = Mapping[str, float]
Launch = dict[str, int]

NODE_COUNTS = (100, 1_000, 10_000)
BUNDLE_COUNTS = (1_000, 10_000, 100_000)
QUICK = ((100, 1_000), (1_000, 100_000))
TARGET_CELL = (1_000, 100_000)
TARGET_MS = 100.0
TARGET_SPEEDUP_V2 = 10.0
NODE_MARGIN = 0.10  # rayctl's node count at most the fewer of Ray v1's and v2's + this
REPEAT_BUDGET_S = 20.0  # no further runs of one scheduler on one input past this much time
PREPARE_TIMEOUT_S = 600.0  # building one scheduler's input in the child (never timed)

HEAD_TYPE = "head"
NODE_TYPES: dict[str, dict[str, float]] = {  # name: resources; the 10 worker types + the head
    "cpu-4": {"CPU": 4, "memory": 16 * GIB},
    "cpu-8": {"CPU": 8, "memory": 32 * GIB},
    "cpu-16": {"CPU": 16, "memory": 64 * GIB},
    "cpu-32": {"CPU": 32, "memory": 128 * GIB},
    "cpu-64": {"CPU": 64, "memory": 256 * GIB},
    "highmem-16": {"CPU": 16, "memory": 128 * GIB},
    "highmem-48": {"CPU": 48, "memory": 384 * GIB},
    "gpu-1": {"CPU": 8, "memory": 32 * GIB, "GPU": 1},
    "gpu-4": {"CPU": 32, "memory": 192 * GIB, "GPU": 4},
    "gpu-8": {"CPU": 96, "memory": 768 * GIB, "GPU": 8},
    HEAD_TYPE: {"CPU": 8, "memory": 32 * GIB},
}
# How common each worker type is among the running nodes.
TYPE_WEIGHTS = {
    "cpu-4": 3,
    "cpu-8": 3,
    "cpu-16": 3,
    "cpu-32": 2,
    "cpu-64": 1,
    "highmem-16": 1,
    "highmem-48": 1,
    "gpu-1": 1,
    "gpu-4": 1,
    "gpu-8": 0.5,
}
PLACEMENT_GROUPS: tuple[tuple[str, tuple[dict[str, float], ...]], ...] = (
    ("PACK", ({"CPU": 2, "memory": 4 * GIB},) * 4),
    ("PACK", ({"CPU": 1, "GPU": 1},) * 2),
    ("SPREAD", ({"CPU": 4},) * 3),
    ("SPREAD", ({"CPU": 1},) * 6),
    ("STRICT_PACK", ({"CPU": 8, "memory": 16 * GIB},) * 2),
    ("STRICT_PACK", ({"CPU": 4, "GPU": 2},) * 2),
    ("STRICT_SPREAD", ({"CPU": 8},) * 3),
    ("STRICT_SPREAD", ({"CPU": 4, "GPU": 1},) * 2),
)
CPU_SHAPES, GPU_SHAPES = 42, 8
UPSCALING_SPEED = 1e6  # with every type running, no cap on concurrent launches binds


# -- the input, in no scheduler's format ------------------------------------------------


@dataclass(frozen=True)
class Node:
    id: str
    node_type: str
    is_head: bool
    total: Resources
    available: Resources


@dataclass(frozen=True)
class PlacementGroup:
    id: str  # hex, as Ray prints placement group ids
    strategy: str  # PACK, SPREAD, STRICT_PACK or STRICT_SPREAD
    bundles: tuple[Resources, ...]


@dataclass(frozen=True)
class Scenario:
    label: str
    node_types: Mapping[str, Resources]  # the head's type included
    max_workers: int  # cluster-wide, and per worker type
    nodes: tuple[Node, ...]  # the head first
    demands: tuple[tuple[Resources, int], ...]  # shape x count
    placement_groups: tuple[PlacementGroup, ...]
    upscaling_speed: float = UPSCALING_SPEED
    type_max: Mapping[str, int] | None = None  # per worker type; default: max_workers

    def type_max_workers(self, name: str) -> int:
        if name == HEAD_TYPE:
            return 0
        return self.max_workers if self.type_max is None else self.type_max[name]


def _split(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights`, at least 1 each (largest remainder)."""
    rest = total - len(weights)
    exact = [rest * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    return [c + 1 for c in counts]


def _shapes(rng: random.Random) -> list[tuple[dict[str, float], bool]]:
    """50 distinct bundle shapes, (shape, needs a GPU); memory only where a task asks for it."""

    def shape(cpu: float, mem_gib: int, gpu: float = 0) -> dict[str, float]:
        return {
            "CPU": cpu,
            **({"memory": float(mem_gib * GIB)} if mem_gib else {}),
            **({"GPU": gpu} if gpu else {}),
        }

    cpu = [
        shape(c, m)
        for c in (0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
        for m in (0, 1, 2, 4, 8, 16, 32, 64)
    ]
    gpu = [shape(c, m, g) for g in (0.5, 1, 2, 4, 8) for c in (1, 2, 4, 8) for m in (0, 8, 32)]
    return [(s, False) for s in rng.sample(cpu, CPU_SHAPES)] + [
        (s, True) for s in rng.sample(gpu, GPU_SHAPES)
    ]


def _busy(rng: random.Random, total: Resources) -> dict[str, float]:
    """Free resources of a running node: about 15% idle, 15% with no CPU left, the rest in
    between; memory and GPUs in use along with the CPUs."""
    cpus = int(total["CPU"])
    draw = rng.random()
    cpu_used = 0 if draw < 0.15 else cpus if draw < 0.3 else rng.randint(1, cpus - 1)
    used = {
        "CPU": float(cpu_used),
        "memory": float(min(total["memory"], cpu_used * rng.choice((0, 2, 4)) * GIB)),
        "GPU": float(rng.randint(0, int(total.get("GPU", 0)))),
    }
    return {k: v - used[k] for k, v in total.items()}


def make_scenario(n_nodes: int, n_bundles: int, seed: int = 0) -> Scenario:
    """The same shapes and placement groups for every size; nodes and counts per size."""
    rng = random.Random(f"{seed}/{n_nodes}/{n_bundles}")
    shapes = _shapes(random.Random(seed))
    zipf = [1.0 / (rank + 1) for rank in random.Random(f"{seed}/ranks").sample(range(50), 50)]
    # Zipf over a random order of the shapes, small ones more common (a GPU counts as 8 CPUs).
    weights = [
        w / (shape["CPU"] + 8 * shape.get("GPU", 0))
        for w, (shape, _) in zip(zipf, shapes, strict=True)
    ]
    counts = _split(n_bundles, weights)

    workers = list(TYPE_WEIGHTS)  # one of each type, then drawn by weight
    workers += rng.choices(workers, list(TYPE_WEIGHTS.values()), k=n_nodes - len(workers))
    nodes = [_head(_busy(rng, NODE_TYPES[HEAD_TYPE]))] + [
        _worker(f"node-{i:05d}", t, _busy(rng, NODE_TYPES[t])) for i, t in enumerate(workers)
    ]
    return Scenario(
        label=f"{n_nodes:,} nodes x {n_bundles:,} bundles",
        node_types=NODE_TYPES,
        max_workers=n_nodes + 100_000,
        nodes=tuple(nodes),
        demands=tuple((s, c) for (s, _), c in zip(shapes, counts, strict=True)),
        placement_groups=tuple(
            PlacementGroup(f"{i + 1:036x}", strategy, bundles)
            for i, (strategy, bundles) in enumerate(PLACEMENT_GROUPS)
        ),
    )


def _head(free: Resources) -> Node:
    return Node("node-head", HEAD_TYPE, True, NODE_TYPES[HEAD_TYPE], free)


def _worker(node_id: str, node_type: str, free: Resources | None = None) -> Node:
    """A worker with `free` resources (all of its type's by default)."""
    return Node(node_id, node_type, False, NODE_TYPES[node_type], free or NODE_TYPES[node_type])


def _types(*names: str) -> dict[str, Resources]:
    return {name: NODE_TYPES[name] for name in (*names, HEAD_TYPE)}


def ray_examples() -> list[Scenario]:
    """Three inputs where rayctl decided unlike Ray: the 100 x {CPU: 1} of Ray's own tests
    over three sizes (rayctl launched 5 small nodes where Ray launches 2), a STRICT_SPREAD
    placement group beyond the upscaling_speed cap (rayctl swapped in a bigger type), and a
    cluster max_workers of 10 with upscaling_speed 9999 (rayctl capped at 5)."""
    head = {"CPU": 1.0}
    busy_head = Node("node-head", HEAD_TYPE, True, head, {"CPU": 0.0})

    def example(label: str, types: dict[str, tuple[Resources, int]], **kw: Any) -> Scenario:
        return Scenario(
            label=label,
            node_types={**{n: r for n, (r, _) in types.items()}, HEAD_TYPE: head},
            nodes=(busy_head,),
            type_max={n: m for n, (_, m) in types.items()},
            **kw,
        )

    return [
        example(
            "m4.large, m4.4xlarge, m4.16xlarge (max 10, 8, 4); 100 x {CPU: 1}; speed 9999",
            {
                "m4.large": ({"CPU": 2}, 10),
                "m4.4xlarge": ({"CPU": 16}, 8),
                "m4.16xlarge": ({"CPU": 64}, 4),
            },
            max_workers=100,
            demands=(({"CPU": 1}, 100),),
            placement_groups=(),
            upscaling_speed=9999,
        ),
        example(
            "p2.xlarge (max 10), p2.8xlarge; STRICT_SPREAD 8 x {GPU: 1}; speed 1",
            {"p2.xlarge": ({"CPU": 16, "GPU": 1}, 10), "p2.8xlarge": ({"CPU": 32, "GPU": 8}, 100)},
            max_workers=100,
            demands=(),
            placement_groups=(PlacementGroup(f"{1:036x}", "STRICT_SPREAD", ({"GPU": 1},) * 8),),
            upscaling_speed=1,
        ),
        example(
            "cpu (1 CPU), gpu (100 CPU, 1 GPU); max_workers 10; 100 x {CPU: 1}; speed 9999",
            {"cpu": ({"CPU": 1}, 100), "gpu": ({"CPU": 100, "GPU": 1}, 100)},
            max_workers=10,
            demands=(({"CPU": 1}, 100),),
            placement_groups=(),
            upscaling_speed=9999,
        ),
    ]


def tiny_scenarios() -> list[Scenario]:
    """Inputs small enough to read, checked before any timing: a mixed one, the two
    smallest inputs found where rayctl launched more capacity than Ray, and Ray's three
    examples."""
    busy_head = _head({"CPU": 0, "memory": 0})
    return [
        Scenario(
            label="head + 2 busy workers, 31 bundles of 4 shapes, 4 placement groups",
            node_types=_types("cpu-8", "cpu-32", "highmem-16", "gpu-1"),
            max_workers=1_000,
            nodes=(
                _head({"CPU": 0, "memory": 16 * GIB}),
                _worker("node-0", "cpu-8", {"CPU": 3, "memory": 20 * GIB}),
                _worker("node-1", "gpu-1", {"CPU": 2, "memory": 8 * GIB, "GPU": 0}),
            ),
            demands=(
                ({"CPU": 1}, 20),
                ({"CPU": 2, "memory": 8 * GIB}, 6),
                ({"CPU": 4, "memory": 32 * GIB}, 2),
                ({"CPU": 1, "GPU": 1}, 3),
            ),
            placement_groups=tuple(
                PlacementGroup(f"{i + 1:036x}", strategy, bundles)
                for i, (strategy, bundles) in enumerate(PLACEMENT_GROUPS)
                if i in (0, 2, 4, 6)
            ),
        ),
        Scenario(
            label="types cpu-16, cpu-32; bundles {CPU: 12} x 1, {CPU: 10} x 2",
            node_types=_types("cpu-16", "cpu-32"),
            max_workers=1_000,
            nodes=(busy_head,),
            demands=(({"CPU": 12}, 1), ({"CPU": 10}, 2)),
            placement_groups=(),
        ),
        *ray_examples(),
        Scenario(
            label="1 idle cpu-16; SPREAD 2 x {CPU: 6}, then STRICT_SPREAD 2 x {CPU: 8}",
            node_types=_types("cpu-16", "cpu-32"),
            max_workers=1_000,
            nodes=(busy_head, _worker("node-0", "cpu-16")),
            demands=(),
            placement_groups=(
                PlacementGroup(f"{1:036x}", "SPREAD", ({"CPU": 6},) * 2),
                PlacementGroup(f"{2:036x}", "STRICT_SPREAD", ({"CPU": 8},) * 2),
            ),
        ),
    ]


# -- one translation per scheduler: Scenario -> that scheduler's own input ----------------


def to_rayctl(s: Scenario) -> rayctl_scheduler.ScheduleRequest:
    rs = rayctl_scheduler
    return rs.ScheduleRequest(
        node_types={
            name: rs.NodeTypeSpec(name, dict(res), max_workers=s.type_max_workers(name))
            for name, res in s.node_types.items()
        },
        max_workers=s.max_workers,
        nodes=[
            rs.NodeView(n.id, n.node_type, is_head=n.is_head, available=n.available, total=n.total)
            for n in s.nodes
        ],
        demands=[rs.Demand(dict(shape), count) for shape, count in s.demands],
        placement_groups=[
            rs.PlacementGroupDemand(rs.PlacementStrategy(pg.strategy), pg.bundles)
            for pg in s.placement_groups
        ],
        upscaling_speed=s.upscaling_speed,
    )


def decide_rayctl(request: rayctl_scheduler.ScheduleRequest) -> Launch:
    return rayctl_scheduler.schedule(request).launch


class _V1Provider:
    """What the v1 scheduler asks of a node provider: tags and an internal IP per node."""

    def __init__(self, tags: dict[str, dict[str, str]], ips: dict[str, str]) -> None:
        self._tags, self._ips = tags, ips

    def node_tags(self, node_id: str) -> dict[str, str]:
        return self._tags[node_id]

    def internal_ip(self, node_id: str) -> str:
        return self._ips[node_id]


@dataclass
class RayV1Call:
    scheduler: RayV1Scheduler
    nodes: list[str]
    demands: list[dict[str, float]]  # one dict per bundle
    unused_by_ip: dict[str, dict[str, float]]
    placement_groups: list[PlacementGroupTableData]
    max_by_ip: dict[str, dict[str, float]]


def to_ray_v1(s: Scenario) -> RayV1Call:
    ips = {n.id: f"10.0.{i // 256}.{i % 256}" for i, n in enumerate(s.nodes)}
    tags = {
        n.id: {
            TAG_RAY_NODE_KIND: NODE_KIND_HEAD if n.is_head else NODE_KIND_WORKER,
            TAG_RAY_USER_NODE_TYPE: n.node_type,
        }
        for n in s.nodes
    }
    node_types = {  # available_node_types, as in the cluster YAML
        name: {
            "resources": dict(res),
            "min_workers": 0,
            "max_workers": s.type_max_workers(name),
            "node_config": {},
        }
        for name, res in s.node_types.items()
    }
    return RayV1Call(
        scheduler=RayV1Scheduler(
            _V1Provider(tags, ips), node_types, s.max_workers, HEAD_TYPE, s.upscaling_speed
        ),
        nodes=[n.id for n in s.nodes],
        demands=[dict(shape) for shape, count in s.demands for _ in range(count)],
        unused_by_ip={ips[n.id]: dict(n.available) for n in s.nodes},
        placement_groups=[
            PlacementGroupTableData(
                placement_group_id=bytes.fromhex(pg.id),
                strategy=PlacementStrategy.Value(pg.strategy),
                state=PlacementGroupTableData.PENDING,
                bundles=[Bundle(unit_resources=b) for b in pg.bundles],
            )
            for pg in s.placement_groups
        ],
        max_by_ip={ips[n.id]: dict(n.total) for n in s.nodes},
    )


def decide_ray_v1(call: RayV1Call) -> Launch:
    launch, _unfulfilled = call.scheduler.get_nodes_to_launch(
        nodes=call.nodes,
        launching_nodes={},
        resource_demands=call.demands,
        unused_resources_by_ip=call.unused_by_ip,
        pending_placement_groups=call.placement_groups,
        max_resources_by_ip=call.max_by_ip,
        ensure_min_cluster_size=[],
        node_availability_summary=NodeAvailabilitySummary(node_availabilities={}),
    )
    return dict(launch)


@dataclass
class RayV2Call:
    scheduler: RayV2Scheduler
    request: SchedulingRequest


def _v2_gang(pg: PlacementGroup) -> GangResourceRequest:
    """A placement group as the GCS reports it: STRICT_PACK bundles share an affinity label,
    STRICT_SPREAD bundles an anti-affinity one, PACK and SPREAD have no constraint; the
    bundles both in a bundle selector and in the legacy `requests` (the scheduler places the
    former and orders gangs by the latter)."""
    kind = ResourceRequestUtil.PlacementConstraintType
    constraint = {"STRICT_PACK": kind.AFFINITY, "STRICT_SPREAD": kind.ANTI_AFFINITY}.get(
        pg.strategy
    )
    constraints = [(constraint, f"_PG_{pg.id}", "")] if constraint else None
    requests = [ResourceRequestUtil.make(dict(b), constraints) for b in pg.bundles]
    return GangResourceRequest(
        details=f"{pg.id}:{pg.strategy}|PENDING",
        requests=requests,
        bundle_selectors=[BundleSelector(resource_requests=requests)],
    )


def _v2_instance(node: Node) -> AutoscalerInstance:
    return AutoscalerInstance(
        cloud_instance_id=f"cloud-{node.id}",
        im_instance=Instance(
            instance_id=node.id,
            instance_type=node.node_type,
            status=Instance.RAY_RUNNING,
            node_id=node.id,
            node_kind=NodeKind.HEAD if node.is_head else NodeKind.WORKER,
        ),
        ray_node=NodeState(
            node_id=node.id.encode(),
            ray_node_type_name=node.node_type,
            available_resources=node.available,
            total_resources=node.total,
            status=NodeStatus.RUNNING,
        ),
    )


def to_ray_v2(s: Scenario) -> RayV2Call:
    return RayV2Call(
        RayV2Scheduler(),
        SchedulingRequest(
            disable_launch_config_check=True,
            node_type_configs={
                name: NodeTypeConfig(
                    name=name,
                    min_worker_nodes=0,
                    max_worker_nodes=s.type_max_workers(name),
                    resources=dict(res),
                )
                for name, res in s.node_types.items()
            },
            max_num_nodes=s.max_workers + 1,  # v2 counts the head among its nodes
            resource_requests=[
                ResourceRequestByCount(request=ResourceRequest(resources_bundle=shape), count=c)
                for shape, c in s.demands
            ],
            gang_resource_requests=[_v2_gang(pg) for pg in s.placement_groups],
            current_instances=[_v2_instance(n) for n in s.nodes],
        ),
    )


def decide_ray_v2(call: RayV2Call) -> Launch:
    launch: Launch = {}
    for request in call.scheduler.schedule(call.request).to_launch:
        launch[request.instance_type] = launch.get(request.instance_type, 0) + request.count
    return launch


# -- what each input says, read back from each scheduler's format (the fairness check) ---

Shape = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class InputView:
    node_types: dict[str, Shape]
    nodes: list[tuple[str, bool, Shape]]  # type, head?, free resources; sorted
    bundles: Counter[Shape]  # pending and placement group bundles alike


def _shape(resources: Mapping[str, float]) -> Shape:
    return tuple(sorted((k, float(v)) for k, v in resources.items()))


def _view(
    types: Iterable[tuple[str, Mapping[str, float]]],
    nodes: Iterable[tuple[str, bool, Mapping[str, float]]],
    bundles: Iterable[tuple[Mapping[str, float], int]],
) -> InputView:
    counts: Counter[Shape] = Counter()
    for bundle, count in bundles:
        counts[_shape(bundle)] += count
    return InputView(
        {name: _shape(res) for name, res in types},
        sorted((t, head, _shape(free)) for t, head, free in nodes),
        counts,
    )


def view_rayctl(r: rayctl_scheduler.ScheduleRequest) -> InputView:
    return _view(
        ((name, t.resources) for name, t in r.node_types.items()),
        ((n.node_type, n.is_head, n.available or {}) for n in r.nodes),
        [
            *((d.bundle, d.count) for d in r.demands),
            *((b, 1) for pg in r.placement_groups for b in pg.bundles),
        ],
    )


def view_ray_v1(call: RayV1Call) -> InputView:
    provider = call.scheduler.provider
    return _view(
        ((name, t["resources"]) for name, t in call.scheduler.node_types.items()),
        (
            (
                provider.node_tags(n)[TAG_RAY_USER_NODE_TYPE],
                provider.node_tags(n)[TAG_RAY_NODE_KIND] == NODE_KIND_HEAD,
                call.unused_by_ip[provider.internal_ip(n)],
            )
            for n in call.nodes
        ),
        [
            *((d, 1) for d in call.demands),
            *((b.unit_resources, 1) for pg in call.placement_groups for b in pg.bundles),
        ],
    )


def view_ray_v2(call: RayV2Call) -> InputView:
    r = call.request
    return _view(
        ((name, t.resources) for name, t in r.node_type_configs.items()),
        (
            (
                i.im_instance.instance_type,
                i.im_instance.node_kind == NodeKind.HEAD,
                i.ray_node.available_resources,
            )
            for i in r.current_instances
            if i.im_instance and i.ray_node
        ),
        [
            *((q.request.resources_bundle, q.count) for q in r.resource_requests),
            *(
                (q.resources_bundle, 1)
                for gang in r.gang_resource_requests
                for q in gang.bundle_selectors[0].resource_requests
            ),
        ],
    )


P = TypeVar("P")


@dataclass(frozen=True)
class Contender(Generic[P]):
    name: str
    prepare: Callable[[Scenario], P]  # builds the input: never timed
    decide: Callable[[P], Launch]  # one decision: timed
    view: Callable[[P], InputView]  # the input read back, to check all get the same


CONTENDERS: tuple[Contender[Any], ...] = (
    Contender("rayctl", to_rayctl, decide_rayctl, view_rayctl),
    Contender("ray-v1", to_ray_v1, decide_ray_v1, view_ray_v1),
    Contender("ray-v2", to_ray_v2, decide_ray_v2, view_ray_v2),
)


def check_same_input(scenario: Scenario) -> None:
    """All three get the same node types, nodes with the same free resources, and the same
    bundles; raises if not."""
    views = {c.name: c.view(c.prepare(scenario)) for c in CONTENDERS}
    first, *others = views.items()
    for name, view in others:
        if view != first[1]:
            raise AssertionError(f"{scenario.label}: {name} is not given what {first[0]} is")


# -- measuring --------------------------------------------------------------------------


@dataclass
class Capacity:
    nodes: int
    cpu: float
    gpu: float
    covers: bool  # free + launched capacity >= total demand, for CPU, GPU and memory
    short: dict[str, float] = field(default_factory=dict)  # what is missing, if not


# Per tiny input, each scheduler's decision and its capacity.
Sanity = list[tuple[Scenario, list[tuple[str, Launch, Capacity]]]]


def capacity(s: Scenario, launch: Launch) -> Capacity:
    def total(items: Iterable[tuple[Resources, float]]) -> dict[str, float]:
        sums = dict.fromkeys(("CPU", "GPU", "memory"), 0.0)
        for res, n in items:
            for k in sums:
                sums[k] += res.get(k, 0.0) * n
        return sums

    launched = total((s.node_types[t], n) for t, n in launch.items())
    free = total((n.available, 1) for n in s.nodes)
    wanted = total([*s.demands, *((b, 1) for pg in s.placement_groups for b in pg.bundles)])
    short = {k: wanted[k] - free[k] - launched[k] for k in wanted}
    short = {k: v for k, v in short.items() if v > 1e-6}
    return Capacity(sum(launch.values()), launched["CPU"], launched["GPU"], not short, short)


@dataclass
class Cell:
    """One scheduler on one input."""

    nodes: int
    bundles: int
    scheduler: str
    times_s: list[float] = field(default_factory=list)
    launch: Launch | None = None
    capacity: Capacity | None = None
    skipped: str | None = None  # why there is no time

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None


def _child(contender: Contender[Any], scenario: Scenario, conn: Connection) -> None:
    try:
        prepared = contender.prepare(scenario)
        gc.collect()
        conn.send("ready")
        start = time.perf_counter()
        launch = contender.decide(prepared)
        conn.send((time.perf_counter() - start, launch))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def time_one_decision(
    contender: Contender[Any], scenario: Scenario, cap_s: float
) -> tuple[float, Launch] | None:
    """One decision in a forked child; None if it runs past `cap_s` (the child is killed)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(contender, scenario, send), daemon=True)
    child.start()
    send.close()

    def next_message() -> Any:
        message = receive.recv()
        if isinstance(message, tuple) and message[0] == "error":
            raise RuntimeError(f"{contender.name} failed:\n{message[1]}")
        return message

    try:
        if not receive.poll(PREPARE_TIMEOUT_S):
            raise RuntimeError(f"{contender.name}: input not built in {PREPARE_TIMEOUT_S:g} s")
        next_message()  # "ready": the input is built, the decision starts
        return next_message() if receive.poll(cap_s) else None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def machine_load() -> str:
    """The load average against the cores: other work on the machine skews every time."""
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    busy = "  BUSY: other work competes, times are unreliable" if one >= cores else ""
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores{busy}"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(cells: list[tuple[int, int]], runs: int, cap_s: float, seed: int) -> list[Cell]:
    results: list[Cell] = []
    over_cap: dict[str, list[tuple[int, int]]] = {c.name: [] for c in CONTENDERS}
    for n_nodes, n_bundles in cells:
        scenario = make_scenario(n_nodes, n_bundles, seed)
        check_same_input(scenario)
        for contender in CONTENDERS:
            cell = Cell(n_nodes, n_bundles, contender.name)
            results.append(cell)
            smaller = [
                (n, b) for n, b in over_cap[contender.name] if n <= n_nodes and b <= n_bundles
            ]
            if smaller and (n_nodes, n_bundles) != TARGET_CELL:  # the target cell always runs
                n, b = smaller[0]
                cell.skipped = f"skipped (> {cap_s:g} s at {n:,} x {b:,}: not run)"
                progress(f"{scenario.label}: {contender.name} {cell.skipped}")
                continue
            while len(cell.times_s) < runs and sum(cell.times_s) < REPEAT_BUDGET_S:
                progress(f"{scenario.label}: {contender.name} run {len(cell.times_s) + 1}")
                outcome = time_one_decision(contender, scenario, cap_s)
                if outcome is None:
                    if not cell.times_s:
                        over_cap[contender.name].append((n_nodes, n_bundles))
                        cell.skipped = f"skipped (> {cap_s:g} s)"
                    break
                elapsed, cell.launch = outcome
                cell.times_s.append(elapsed)
            if cell.launch is not None and cell.skipped is None:
                cell.capacity = capacity(scenario, cell.launch)
    return results


# -- reporting --------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_launch(launch: Launch) -> str:
    return ", ".join(f"{t}: {n}" for t, n in sorted(launch.items())) or "nothing"


def speedup(ray: Cell, ours: Cell, cap_s: float) -> tuple[float | None, bool]:
    """Ray's time / rayctl's, and whether it is a lower bound (Ray ran over the cap)."""
    if ours.median_s is None:
        return None, False
    if ray.median_s is not None:
        return ray.median_s / ours.median_s, False
    if ray.skipped is not None:
        return cap_s / ours.median_s, True
    return None, False


def fmt_ratio(ratio: tuple[float | None, bool]) -> str:
    value, lower_bound = ratio
    if value is None:
        return "-"
    return f"{'> ' if lower_bound else ''}{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def by_input(results: list[Cell]) -> dict[tuple[int, int], dict[str, Cell]]:
    table: dict[tuple[int, int], dict[str, Cell]] = {}
    for cell in results:
        table.setdefault((cell.nodes, cell.bundles), {})[cell.scheduler] = cell
    return table


def decided_capacity(results: list[Cell], sanity: Sanity) -> dict[str, dict[str, Capacity]]:
    """Per input (tiny ones included), the capacity each scheduler that decided launched."""
    table = {
        label: {name: cap for name, _, cap in rows}
        for label, rows in ((f"tiny: {s.label}", rows) for s, rows in sanity)
    }
    for (n, b), row in by_input(results).items():
        table[f"{n:,} x {b:,}"] = {k: c.capacity for k, c in row.items() if c.capacity}
    return table


def more_capacity(table: dict[str, dict[str, Capacity]]) -> tuple[int, list[str]]:
    """How many (input, Ray scheduler) pairs were compared, and where rayctl launched more
    CPU or GPU than the Ray scheduler."""
    compared, problems = 0, []
    for label, caps in table.items():
        ours = caps.get("rayctl")
        for name in ("ray-v1", "ray-v2"):
            theirs = caps.get(name)
            if ours is None or theirs is None:
                continue
            compared += 1
            for what, mine, other in (("CPU", ours.cpu, theirs.cpu), ("GPU", ours.gpu, theirs.gpu)):
                if mine > other + 1e-6:
                    problems.append(f"{label}: rayctl {what} {mine:g} > {name} {other:g}")
    return compared, problems


def node_counts(table: dict[str, dict[str, Capacity]]) -> tuple[int, list[str], list[str]]:
    """How many inputs had both Ray schedulers decide, rayctl's node count against the fewer
    of theirs per input, and the inputs where it is above that + NODE_MARGIN."""
    compared, ratios, problems = 0, [], []
    for label, caps in table.items():
        ours, v1, v2 = caps.get("rayctl"), caps.get("ray-v1"), caps.get("ray-v2")
        if ours is None or v1 is None or v2 is None:
            continue
        compared += 1
        fewer = min(v1.nodes, v2.nodes)
        ratio = f"{ours.nodes / fewer:.2f}" if fewer else ("1.00" if not ours.nodes else "inf")
        ratios.append(f"{label}: rayctl {ours.nodes} / {fewer} = {ratio}")
        if ours.nodes > fewer * (1 + NODE_MARGIN) + 1e-9:
            problems.append(f"{label}: rayctl {ours.nodes} > {fewer} + {NODE_MARGIN:.0%}")
    return compared, ratios, problems


def _speedup_reached(ratio: tuple[float | None, bool], target: float) -> bool | None:
    """None when unknown: no figure, or a lower bound under the target."""
    value, lower_bound = ratio
    if value is None or (lower_bound and value < target):
        return None
    return value >= target


def targets(
    results: list[Cell], sanity: Sanity, cap_s: float
) -> list[tuple[str, bool | None, list[str]]]:
    table = by_input(results)
    row = table.get(TARGET_CELL)
    label = f"{TARGET_CELL[0]:,} nodes x {TARGET_CELL[1]:,} bundles"
    checks: list[tuple[str, bool | None, list[str]]] = []
    if row is None:
        checks.append((f"{label}: not run", None, []))
    else:
        ours = row["rayctl"].median_s
        checks.append(
            (
                f"{label}: rayctl under {TARGET_MS:g} ms per decision",
                None if ours is None else ours * 1000 < TARGET_MS,
                [fmt_time(ours)],
            )
        )
        ratio = speedup(row["ray-v2"], row["rayctl"], cap_s)
        checks.append(
            (
                f"{label}: rayctl at least {TARGET_SPEEDUP_V2:g}x faster than Ray v2",
                _speedup_reached(ratio, TARGET_SPEEDUP_V2),
                [fmt_ratio(ratio)],
            )
        )
    table = decided_capacity(results, sanity)
    compared, problems = more_capacity(table)
    checks.append(
        (
            "rayctl never launches more CPU or GPU capacity than Ray",
            not problems if compared else None,
            [f"{len(problems)} excess(es) in {compared} (input, Ray scheduler) pairs", *problems],
        )
    )
    compared, ratios, problems = node_counts(table)
    checks.append(
        (
            f"rayctl launches no more nodes than the fewer of Ray's + {NODE_MARGIN:.0%}",
            not problems if compared else None,
            [f"{len(problems)} excess(es) in {compared} inputs; nodes / fewer of Ray's:", *ratios],
        )
    )
    return checks


def print_sanity(sanity: Sanity) -> None:
    print("Decisions on tiny inputs:")
    for scenario, rows in sanity:
        print(f"  {scenario.label}")
        for name, launch, cap in rows:
            covered = "covers demand" if cap.covers else f"SHORT {cap.short}"
            print(
                f"    {name:<7} {fmt_launch(launch):<38} CPU {cap.cpu:>4g}  GPU {cap.gpu:>2g}"
                f"  {covered}"
            )
    print()


def print_table(results: list[Cell], sanity: Sanity, cap_s: float) -> None:
    header = (
        f"{'nodes':>7} {'bundles':>8}  {'scheduler':<9} {'time/decision':>14} {'runs':>4}"
        f"  {'launched':>8} {'CPU':>9} {'GPU':>7}  {'covers':<6}  launched per type"
    )
    print(header)
    print("-" * len(header))
    for (n, b), row in by_input(results).items():
        for i, cell in enumerate(row.values()):
            head = f"{n:>7,} {b:>8,}" if i == 0 else " " * 16
            if cell.skipped:
                print(f"{head}  {cell.scheduler:<9} {cell.skipped}")
                continue
            cap = cell.capacity
            assert cap is not None and cell.launch is not None
            print(
                f"{head}  {cell.scheduler:<9} {fmt_time(cell.median_s):>14}"
                f" {len(cell.times_s):>4}  {cap.nodes:>8,} {cap.cpu:>9,g} {cap.gpu:>7,g}"
                f"  {'yes' if cap.covers else 'NO':<6}  {fmt_launch(cell.launch)}"
            )
    print()
    print("Speed: Ray's time per decision / rayctl's ('>': Ray ran past the cap)")
    print(f"{'nodes':>7} {'bundles':>8}  {'rayctl':>10}  {'vs ray-v1':>10}  {'vs ray-v2':>10}")
    for (n, b), row in by_input(results).items():
        ours = row["rayctl"]
        print(
            f"{n:>7,} {b:>8,}  {fmt_time(ours.median_s):>10}"
            f"  {fmt_ratio(speedup(row['ray-v1'], ours, cap_s)):>10}"
            f"  {fmt_ratio(speedup(row['ray-v2'], ours, cap_s)):>10}"
        )
    print()
    print("Targets:")
    for text, passed, detail in targets(results, sanity, cap_s):
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[passed]
        print(f"  [{mark}] {text}: {detail[0] if detail else ''}")
        for line in detail[1:]:
            print(f"           {line}")


def as_json(sanity: Sanity, results: list[Cell], cap_s: float, seed: int) -> dict[str, Any]:
    def cap_json(cap: Capacity | None) -> dict[str, Any] | None:
        if cap is None:
            return None
        return {
            "nodes": cap.nodes,
            "cpu": cap.cpu,
            "gpu": cap.gpu,
            "covers_demand": cap.covers,
            "short": cap.short,
        }

    table = by_input(results)
    return {
        "versions": VERSIONS,
        "seed": seed,
        "cap_s": cap_s,
        "sanity": [
            {
                "input": scenario.label,
                "decisions": [
                    {"scheduler": name, "launch": launch, "capacity": cap_json(cap)}
                    for name, launch, cap in rows
                ],
            }
            for scenario, rows in sanity
        ],
        "results": [
            {
                "nodes": c.nodes,
                "bundles": c.bundles,
                "scheduler": c.scheduler,
                "median_s": c.median_s,
                "times_s": c.times_s,
                "skipped": c.skipped,
                "launch": c.launch,
                "capacity": cap_json(c.capacity),
            }
            for c in results
        ],
        "speedup": [
            {
                "nodes": n,
                "bundles": b,
                **{
                    f"vs_{name}": {"ratio": ratio, "lower_bound": lower_bound}
                    for name in ("ray-v1", "ray-v2")
                    for ratio, lower_bound in [speedup(row[name], row["rayctl"], cap_s)]
                },
            }
            for (n, b), row in table.items()
        ],
        "targets": [
            {"target": text, "passed": passed, "details": detail}
            for text, passed, detail in targets(results, sanity, cap_s)
        ],
    }


def sanity_check() -> Sanity:
    for scenario in tiny_scenarios():
        check_same_input(scenario)
    return [
        (
            scenario,
            [
                (c.name, launch, capacity(scenario, launch))
                for c in CONTENDERS
                for launch in [c.decide(c.prepare(scenario))]
            ],
        )
        for scenario in tiny_scenarios()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 100 x 1k and 1k x 100k")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds per decision at most")
    parser.add_argument("--runs", type=int, default=3, help="runs per input (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cells = list(QUICK) if args.quick else [(n, b) for n in NODE_COUNTS for b in BUNDLE_COUNTS]
    sanity = sanity_check()
    load = machine_load()
    if not args.json:
        print(f"{VERSIONS}; seed {args.seed}, cap {args.cap:g} s per decision")
        print(f"at start: {load}\n")
        print_sanity(sanity)
    results = measure(cells, args.runs, args.cap, args.seed)
    if args.json:
        report = as_json(sanity, results, args.cap, args.seed)
        print(
            json.dumps({**report, "load_at_start": load, "load_at_end": machine_load()}, indent=2)
        )
    else:
        print_table(results, sanity, args.cap)
        print(f"\nat end: {machine_load()}")


if __name__ == "__main__":
    main()
