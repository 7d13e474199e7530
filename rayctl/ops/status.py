"""A cluster's status: the provider's nodes joined with Ray's view of them by instance id."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pydantic
from pydantic import BaseModel

from rayctl.autoscaler.status import AutoscalerStatus
from rayctl.config.loader import LoadedConfig
from rayctl.config.schema import ClusterConfig
from rayctl.errors import ClusterNotFound
from rayctl.ops.head import autoscaler_off_hint
from rayctl.ops.head import monitor_running as is_monitor_running
from rayctl.providers.base import Node, NodeKind, NodeState, Tag, stopped_nodes
from rayctl.providers.registry import make_provider
from rayctl.runtime import head_paths
from rayctl.runtime.ray_adapter import RayNode, RayUnreachable, list_ray_nodes
from rayctl.runtime.ray_auth import ClusterAuth, TokenError


class NodeRow(BaseModel):
    id: str
    node_type: str
    kind: str
    state: str  # the provider's view: pending, running, stopped
    stage: str  # bootstrap stage: ... ready or failed
    ip: str
    ray: str  # Ray's view: RUNNING, IDLE, DEAD, or absent when Ray does not know the node
    resources: dict[str, float]  # totals
    used: dict[str, float]
    idle_s: float | None
    error: str | None


class NodeTypeRow(BaseModel):
    """A node type of the config, with or without nodes: what the autoscaler may launch."""

    node_type: str
    head: bool  # the head's type
    workers: int  # workers of this type now
    min_workers: int
    max_workers: int


class AutostopView(BaseModel):
    """Autostop as the head's monitor runs it (its last status document)."""

    idle_minutes: float | None  # None: not known here (the head is stopped, the config says none)
    down: bool  # remove the cluster (else stop its nodes for a later `up`)
    idle_s: float | None  # idle so far (None: not idle)
    left_s: float | None  # before it stops, now (None: not counting down)
    busy: str | None  # why it is not idle
    stopped_at: float | None  # when autostop stopped the cluster (None: it did not)


class ClusterStatus(BaseModel):
    cluster_name: str
    head_ip: str | None
    gcs_address: str | None
    dashboard_url: str | None
    ray_reachable: bool
    ray_error: str | None
    nodes: list[NodeRow]
    node_types: list[NodeTypeRow]  # every type of the config, in its order
    max_workers: int  # workers of all types together
    monitor_running: bool
    autoscaler_hint: str | None  # the head's autoscaler is off: how to start it
    autoscaler: AutoscalerStatus | None  # the monitor's last status document
    autostop: AutostopView | None = None  # None: no autostop


def cluster_status(loaded: LoadedConfig, *, home: Path) -> ClusterStatus:
    provider = make_provider(loaded.config, home=home)
    nodes = provider.list_nodes()
    if not any(n.kind is NodeKind.HEAD for n in nodes):  # a stopped cluster: its machines
        nodes += stopped_nodes(provider)
    nodes.sort(key=lambda n: (n.kind is not NodeKind.HEAD, n.id))
    if not nodes:
        raise ClusterNotFound(f"cluster '{loaded.name}' has no nodes; start it with `rayctl up`")
    head = next((n for n in nodes if n.kind is NodeKind.HEAD), None)
    # A stopped head is not asked anything: a machine that is off would not answer.
    stopped = head is not None and head.state is NodeState.STOPPED
    ray_nodes: dict[str, RayNode] = {}
    ray_error: str | None = "the head is stopped; `rayctl up` starts it" if stopped else None
    gcs_address = dashboard_url = None
    if head is not None:
        gcs_address = head.gcs_address
        if Tag.DASHBOARD_PORT in head.tags:
            dashboard_url = f"http://{head.internal_ip}:{head.tags[Tag.DASHBOARD_PORT]}"
    if head is not None and not stopped:
        try:
            # A restarted node registers again under the same instance id: prefer the live one.
            token_file = ClusterAuth.local(loaded.config, home=home).require_token()
            for r in list_ray_nodes(head.gcs_address, token_file=token_file):
                if r.instance_id not in ray_nodes or r.status != "DEAD":
                    ray_nodes[r.instance_id] = r
        except (RayUnreachable, TokenError) as exc:
            ray_error = str(exc).splitlines()[0]
    rows = []
    for n in nodes:
        r = ray_nodes.get(n.id)
        rows.append(
            NodeRow(
                id=n.id,
                node_type=n.node_type,
                kind=n.kind.value,
                state=n.state.value,
                stage=n.status.value,
                ip=n.internal_ip,
                ray=r.status if r else "absent",
                resources={k: v for k, v in r.total.items() if not k.startswith("node:")}
                if r
                else {},
                used={k: v for k, v in r.used.items() if not k.startswith("node:")} if r else {},
                idle_s=r.idle_s if r and r.status != "DEAD" else None,
                error=n.tags.get(Tag.ERROR) or None,
            )
        )
    monitor_running, autoscaler, hint = False, None, None
    if head is not None and not stopped:
        monitor_running = is_monitor_running(provider, head)
        hint = None if monitor_running else autoscaler_off_hint(loaded)
        lines: list[str] = []
        runner = provider.runner(head)
        read = runner.run(f"cat {head_paths.MONITOR_STATUS}", timeout_s=15, stream=lines.append)
        if read.ok and lines:
            try:
                autoscaler = AutoscalerStatus.model_validate_json("\n".join(lines))
            except pydantic.ValidationError:  # written by another rayctl version: not shown
                autoscaler = None
    return ClusterStatus(
        cluster_name=loaded.name,
        head_ip=head.internal_ip if head else None,
        gcs_address=gcs_address,
        dashboard_url=dashboard_url,
        ray_reachable=head is not None and ray_error is None,
        ray_error=ray_error,
        nodes=rows,
        node_types=_node_types(loaded.config, nodes),
        max_workers=loaded.config.worker_limit,
        monitor_running=monitor_running,
        autoscaler_hint=hint,
        autoscaler=autoscaler,
        autostop=_autostopped(head, loaded.config)
        if stopped
        else _autostop(head, autoscaler, running=monitor_running),
    )


def _autostopped(head: Node | None, config: ClusterConfig) -> AutostopView | None:
    """Autostop of a stopped head (its status document cannot be read): when its tag says
    autostop stopped it, with the config's timeout if the config has one (`up --autostop`
    may have given it instead)."""
    stopped = head.tags.get(Tag.AUTOSTOPPED) if head is not None else None
    if not stopped:
        return None
    given = config.rayctl.autostop
    return AutostopView(
        idle_minutes=given.idle_minutes if given is not None else None,
        down=False,
        idle_s=None,
        left_s=None,
        busy=None,
        stopped_at=float(stopped),
    )


def _autostop(
    head: Node | None, document: AutoscalerStatus | None, *, running: bool
) -> AutostopView | None:
    """The monitor's autostop, its countdown carried on to now while it runs."""
    settings = document.autostop if document is not None else None
    if head is None or document is None or settings is None:
        return None
    since = time.time() - document.updated_at if running else 0.0
    stopped = head.tags.get(Tag.AUTOSTOPPED)
    return AutostopView(
        idle_minutes=settings.idle_minutes,
        down=settings.down,
        idle_s=None if settings.idle_s is None else settings.idle_s + since,
        left_s=None if settings.left_s is None else max(0.0, settings.left_s - since),
        busy=settings.busy,
        stopped_at=float(stopped) if stopped else None,
    )


def _node_types(config: ClusterConfig, nodes: list[Node]) -> list[NodeTypeRow]:
    workers = Counter(n.node_type for n in nodes if n.kind is NodeKind.WORKER)
    return [
        NodeTypeRow(
            node_type=name,
            head=name == config.head_node_type,
            workers=workers[name],
            min_workers=node_type.min_workers,
            max_workers=config.type_max_workers(name),
        )
        for name, node_type in config.available_node_types.items()
    ]
