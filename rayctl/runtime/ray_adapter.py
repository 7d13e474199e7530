"""The one place that talks to Ray's internals (pinned Ray version, see pyproject.toml)."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

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
    ray_node_id: str = ""  # Ray's own node id (hex), for draining

    @property
    def alive(self) -> bool:
        return self.status != "DEAD"


Bundle = dict[str, float]


@dataclass(frozen=True)
class ClusterSnapshot:
    """Ray's nodes and everything waiting for resources, from one GCS call."""

    nodes: list[RayNode]
    demands: list[tuple[Bundle, int]] = field(default_factory=list)  # task/actor shapes
    placement_groups: list[tuple[str, list[Bundle]]] = field(default_factory=list)
    constraints: list[tuple[Bundle, int]] = field(default_factory=list)  # request_resources


# Ray reads its authentication mode and token per process (RayConfig and its token loader,
# both cached), not per client: each call below points them at its cluster's token first.
_auth_lock = threading.Lock()
_auth_in_use: list[Path | None] = []  # the token file the process uses now, once set


def _authenticate(token_file: Path | None) -> None:
    """Make this process's Ray clients present the token in `token_file` (None: none).
    RAY_AUTH_TOKEN is dropped: it would take precedence over the file."""
    with _auth_lock:
        if _auth_in_use == [token_file]:
            return
        from ray._raylet import AuthenticationTokenLoader, Config

        os.environ.pop("RAY_AUTH_TOKEN", None)
        if token_file is None:
            os.environ["RAY_AUTH_MODE"] = "disabled"
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file)
        Config.initialize("")  # re-reads RAY_AUTH_MODE
        AuthenticationTokenLoader.instance().reset_cache()
        _auth_in_use[:] = [token_file]


def _check_listening(gcs_address: str, timeout_s: float) -> None:
    host, port = gcs_address.rsplit(":", 1)
    # Ray's GCS client waits ~40 s for an address nobody listens on, whatever the timeout.
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout_s, 2)).close()
    except OSError as exc:
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None


def gcs_listening(gcs_address: str) -> bool:
    """Whether Ray's GCS accepts connections (workers can start joining it)."""
    try:
        _check_listening(gcs_address, 1)
    except RayUnreachable:
        return False
    return True


def cluster_snapshot(
    gcs_address: str, *, token_file: Path | None, timeout_s: int = 5
) -> ClusterSnapshot:
    """`token_file`: the cluster's Ray token here (None: the cluster runs without)."""
    _check_listening(gcs_address, timeout_s)
    from ray.autoscaler.v2.sdk import get_cluster_status

    _authenticate(token_file)
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
                ray_node_id=info.node_id or "",
            )
        )
    demand = status.resource_demands
    return ClusterSnapshot(
        nodes=nodes,
        demands=[
            (dict(r.bundle), r.count)
            for d in demand.ray_task_actor_demand
            for r in d.bundles_by_count
        ],
        placement_groups=[
            (
                pg.strategy or "PACK",
                [dict(r.bundle) for r in pg.bundles_by_count for _ in range(r.count)],
            )
            for pg in demand.placement_group_demand
        ],
        constraints=[
            (dict(r.bundle), r.count)
            for c in demand.cluster_constraint_demand
            for r in c.bundles_by_count
        ],
    )


def list_ray_nodes(
    gcs_address: str, *, token_file: Path | None, timeout_s: int = 5
) -> list[RayNode]:
    """Every node GCS knows, alive or dead (no ray.init)."""
    return cluster_snapshot(gcs_address, token_file=token_file, timeout_s=timeout_s).nodes


def drain_idle_node(
    gcs_address: str, ray_node_id: str, message: str, *, token_file: Path | None
) -> tuple[bool, str]:
    """Ask GCS to drain an idle node before it is terminated. GCS refuses (False, why) if the
    node became busy meanwhile; then it must not be terminated."""
    _check_listening(gcs_address, 5)
    from ray._raylet import GcsClient
    from ray.core.generated.autoscaler_pb2 import DrainNodeReason

    _authenticate(token_file)
    accepted, rejection = GcsClient(gcs_address).drain_node(
        node_id=ray_node_id,
        reason=DrainNodeReason.DRAIN_NODE_REASON_IDLE_TERMINATION,
        reason_message=message,
        deadline_timestamp_ms=0,
    )
    return bool(accepted), str(rejection or "")
