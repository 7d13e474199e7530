"""The protocol every provider implements. The records it hands out (Node, its kind, state,
bootstrap stage and tag keys) live in rayctl.runtime.nodes, since bootstrap reads them too;
they are re-exported here for provider code.

Truth lives in the provider's tags: any rayctl process (on a laptop or the head) rebuilds
its view of a cluster from `list_nodes`, so nothing important is only in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from rayctl.runtime.nodes import Node, NodeKind, NodeState, NodeStatus, RayStart, Tag

if TYPE_CHECKING:
    import threading

    from rayctl.config.schema import ClusterConfig
    from rayctl.runtime.bootstrap import StageCallback, StageChange
    from rayctl.runtime.ray_adapter import ClusterSnapshot
    from rayctl.runtime.runner import CommandRunner

__all__ = [
    "Node",
    "NodeKind",
    "NodeProvider",
    "NodeState",
    "NodeStatus",
    "RayStart",
    "Tag",
    "recording",
]


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
        """Terminate nodes and confirm they are gone before forgetting them. Idempotent.
        Nodes that cannot be terminated raise TerminationFailed naming them (the others are
        gone); an error that says nothing of which nodes is a ProviderError."""

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Stop tracking nodes that could not be terminated (`down --force`), without
        terminating them: they may keep running, and the caller tells the user where. A
        provider state that cannot be read (StateCorrupted, which kept a copy) is set aside
        whole. Idempotent."""

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """Merge `tags` into the node's tags."""

    def runner(self, node: Node) -> CommandRunner:
        """Runs commands and moves files on `node`."""

    def ray_start_args(self, node: Node) -> RayStart:
        """Extra `ray start` flags this provider needs for `node` (addresses, ports, dirs),
        asked once per start, with the tags the provider recorded for it (e.g. a head's
        freshly chosen GCS port)."""

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """Give the head what the autoscaler there needs to reach the provider (keys,
        credentials), through `runner`, which runs where that autoscaler runs (the head, or
        its container in docker mode). Returns the config as seen from the head and the
        monitor's environment."""

    def cleanup(self) -> None:
        """Remove per-cluster resources once the last node is gone. Idempotent."""


class SimulatedRay(Protocol):
    """Ray's side of a provider that simulates it (the fake provider): the GCS snapshot,
    draining, and node boots, in place of Ray and bootstrap."""

    def snapshot(self, gcs_address: str) -> ClusterSnapshot: ...

    def drain(self, gcs_address: str, ray_node_id: str, message: str) -> tuple[bool, str]: ...

    def boot(self, node: Node, head: Node, cancelled: threading.Event) -> None: ...


class RemovesFromHead(Protocol):
    """A provider whose head removes its own cluster (autostop with `down`) in a way of its
    own, because terminating the head and then cleaning up would not do: on AWS the head is
    in the security group it deletes and runs with the role it deletes; on ssh hosts its
    claim and the cluster's secrets there must outlive the monitor."""

    def remove_from_head(self, head: Node) -> None:
        """With the workers terminated: remove the cluster's resources and `head`, the node
        this runs on. The last calls may not return (the node is going)."""


class StopsNodes(Protocol):
    """A provider whose nodes' machines stop and start again keeping their disks, addresses
    and tags (autostop without `down` stops them; `up` starts them). A stopped node is no
    node to `list_nodes`: `stopped_nodes` lists it."""

    def stopped_nodes(self, **tag_filters: str) -> list[Node]:
        """This cluster's stopped (or stopping) nodes, filtered by exact tag values."""

    def stop_nodes(self, ids: Sequence[str]) -> None:
        """Stop the nodes' machines, keeping them to start again, and confirm they stopped.
        The node this runs on may be among them: then the call may not return."""

    def start_nodes(self, ids: Sequence[str]) -> list[Node]:
        """Start stopped nodes (waiting for any still stopping); returns them, pending or
        running."""


def node_stopper(provider: NodeProvider) -> StopsNodes | None:
    """The provider, if its nodes' machines stop and start again (else stopping a node is
    stopping its Ray)."""
    return cast("StopsNodes", provider) if hasattr(provider, "stop_nodes") else None


def stopped_nodes(provider: NodeProvider, **tag_filters: str) -> list[Node]:
    """The cluster's stopped nodes, for a provider whose machines stop (else none)."""
    stopper = node_stopper(provider)
    return stopper.stopped_nodes(**tag_filters) if stopper is not None else []


def removal_from_head(provider: NodeProvider) -> RemovesFromHead | None:
    """The provider, if a head removes its cluster in a way of its own (else `down` does:
    terminate the head, then `cleanup`)."""
    return cast("RemovesFromHead", provider) if hasattr(provider, "remove_from_head") else None


def simulated_ray(provider: NodeProvider) -> SimulatedRay | None:
    """The provider's simulated Ray (the fake provider's `ray`), if it has one."""
    ray: SimulatedRay | None = getattr(provider, "ray", None)
    return ray if ray is not None and hasattr(ray, "snapshot") else None


def tagged(nodes: Iterable[Node], tag_filters: Mapping[str, str]) -> list[Node]:
    """The nodes whose tags have every value in `tag_filters` (list_nodes' filter)."""
    return [n for n in nodes if all(n.tags.get(k) == v for k, v in tag_filters.items())]


def recording(provider: NodeProvider, report: StageCallback) -> StageCallback:
    """A bootstrap callback that records each change's tags on the node through `provider`
    (bootstrap itself never writes them), then passes the change on to `report`."""

    def on_stage(node: Node, change: StageChange) -> None:
        if change.tags:
            provider.set_tags(node.id, change.tags)
        report(node, change)

    return on_stage
