"""The provider protocol and the records that pass between providers and the rest of rayctl.

Truth lives in the provider's tags: any rayctl process (on a laptop or the head) rebuilds
its view of a cluster from `list_nodes`, so nothing important is only in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rayctl.config.schema import ClusterConfig
    from rayctl.runtime.runner import CommandRunner


class NodeKind(StrEnum):
    HEAD = "head"
    WORKER = "worker"


class NodeState(StrEnum):
    """Whether the machine (or, for local nodes, the node's process) exists and runs."""

    PENDING = "pending"  # created, not yet running
    RUNNING = "running"
    STOPPED = "stopped"  # exists but is not running (e.g. its process was killed)


class NodeStatus(StrEnum):
    """Bootstrap stage, kept in the node's STATUS tag."""

    UNINITIALIZED = "uninitialized"
    WAITING_FOR_SSH = "waiting-for-ssh"
    SYNCING_FILES = "syncing-files"
    SETTING_UP = "setting-up"
    STARTING_RAY = "starting-ray"
    READY = "ready"
    FAILED = "failed"


class Tag:
    """Tag keys rayctl sets on every node."""

    CLUSTER = "rayctl-cluster"
    KIND = "rayctl-kind"
    NODE_TYPE = "rayctl-node-type"
    LAUNCH_HASH = "rayctl-launch-hash"
    RUNTIME_HASH = "rayctl-runtime-hash"
    START_HASH = "rayctl-start-hash"
    STATUS = "rayctl-status"
    LAUNCH_REQUEST = "rayctl-launch-request"
    GCS_PORT = "rayctl-gcs-port"  # on the head: the port Ray's GCS listens on
    DASHBOARD_PORT = "rayctl-dashboard-port"  # on the head


@dataclass(frozen=True)
class Node:
    id: str
    node_type: str
    kind: NodeKind
    state: NodeState
    internal_ip: str
    external_ip: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    launched_at: float = 0.0

    @property
    def status(self) -> NodeStatus:
        return NodeStatus(self.tags.get(Tag.STATUS, NodeStatus.UNINITIALIZED))

    @property
    def gcs_port(self) -> int:
        return int(self.tags.get(Tag.GCS_PORT, 6379))

    @property
    def gcs_address(self) -> str:
        """On the head: where Ray's GCS listens (what RAY_ADDRESS and workers point at)."""
        return f"{self.internal_ip}:{self.gcs_port}"


class NodeProvider(Protocol):
    """Where nodes come from. Implementations are thread-safe."""

    cluster_name: str

    def bootstrap(self) -> None:
        """Create what nodes need before any can launch (keys, network, firewall). Idempotent."""

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """Create `count` nodes of `node_type` carrying `tags` (which include KIND)."""

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        """This cluster's nodes that are not terminated, filtered by exact tag values."""

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        """Terminate nodes and confirm they are gone before forgetting them. Idempotent."""

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """Merge `tags` into the node's tags."""

    def runner(self, node: Node) -> CommandRunner:
        """Runs commands and moves files on `node`."""

    def ray_start_args(self, node: Node) -> list[str]:
        """Extra `ray start` flags this provider needs for `node` (addresses, ports, dirs)."""

    def prepare_head(
        self, config: ClusterConfig, head: Node
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """Give the head what the autoscaler there needs to reach the provider (keys,
        credentials). Returns the config as seen from the head and the monitor's environment."""

    def cleanup(self) -> None:
        """Remove per-cluster resources once the last node is gone. Idempotent."""
