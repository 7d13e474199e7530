"""A cluster's status: the provider's nodes joined with Ray's view of them by instance id."""

from __future__ import annotations

from pathlib import Path

import pydantic
from pydantic import BaseModel

from rayctl.autoscaler.status import AutoscalerStatus
from rayctl.config.loader import LoadedConfig
from rayctl.errors import ClusterNotFound
from rayctl.ops.head import monitor_running as is_monitor_running
from rayctl.providers.base import NodeKind, Tag
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


class ClusterStatus(BaseModel):
    cluster_name: str
    head_ip: str | None
    gcs_address: str | None
    dashboard_url: str | None
    ray_reachable: bool
    ray_error: str | None
    nodes: list[NodeRow]
    monitor_running: bool
    autoscaler: AutoscalerStatus | None  # the monitor's last status document


def cluster_status(loaded: LoadedConfig, *, home: Path) -> ClusterStatus:
    provider = make_provider(loaded.config, home=home)
    nodes = sorted(provider.list_nodes(), key=lambda n: (n.kind is not NodeKind.HEAD, n.id))
    if not nodes:
        raise ClusterNotFound(f"cluster '{loaded.name}' has no nodes; start it with `rayctl up`")
    head = next((n for n in nodes if n.kind is NodeKind.HEAD), None)
    ray_nodes: dict[str, RayNode] = {}
    ray_error: str | None = None
    gcs_address = dashboard_url = None
    if head is not None:
        gcs_address = head.gcs_address
        if Tag.DASHBOARD_PORT in head.tags:
            dashboard_url = f"http://{head.internal_ip}:{head.tags[Tag.DASHBOARD_PORT]}"
        try:
            # A restarted node registers again under the same instance id: prefer the live one.
            token_file = ClusterAuth.local(loaded.config, home=home).require_token()
            for r in list_ray_nodes(gcs_address, token_file=token_file):
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
    monitor_running, autoscaler = False, None
    if head is not None:
        monitor_running = is_monitor_running(provider, head)
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
        monitor_running=monitor_running,
        autoscaler=autoscaler,
    )
