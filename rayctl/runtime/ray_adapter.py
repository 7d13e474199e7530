"""The one place that talks to Ray's internals (pinned Ray version, see pyproject.toml)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from rayctl.errors import RayctlError


class RayUnreachable(RayctlError):
    """Ray's GCS on the head did not answer."""


@dataclass(frozen=True)
class RayNode:
    instance_id: str  # the provider's node id (RAY_CLOUD_INSTANCE_ID at `ray start`)
    node_type: str
    ip: str
    status: str  # Ray's view: RUNNING, IDLE or DEAD
    idle_s: float
    total: dict[str, float]
    used: dict[str, float]


def list_ray_nodes(gcs_address: str, *, timeout_s: int = 5) -> list[RayNode]:
    """Every node GCS knows, alive or dead, from one GetClusterStatus call (no ray.init)."""
    host, port = gcs_address.rsplit(":", 1)
    # Ray's GCS client waits ~40 s for an address nobody listens on, whatever the timeout.
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout_s, 2)).close()
    except OSError as exc:
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None
    from ray.autoscaler.v2.sdk import get_cluster_status

    try:
        status = get_cluster_status(gcs_address, timeout=timeout_s)
    except Exception as exc:  # GCS client errors have no common public base class
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None
    nodes = []
    for info in [*status.active_nodes, *status.idle_nodes, *status.failed_nodes]:
        usage = info.resource_usage
        nodes.append(
            RayNode(
                instance_id=info.instance_id or "",
                node_type=info.ray_node_type_name or "",
                ip=info.ip_address,
                status=str(info.node_status),
                idle_s=(usage.idle_time_ms or 0) / 1000 if usage else 0.0,
                total={u.resource_name: u.total for u in usage.usage} if usage else {},
                used={u.resource_name: u.used for u in usage.usage} if usage else {},
            )
        )
    return nodes
