"""The records that describe a node: what rayctl knows of one machine (or process) of a
cluster, kept in its provider's tags. Providers create them; bootstrap and the autoscaler read
them. Truth lives in the tags: any rayctl process rebuilds these from `list_nodes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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
    WAITING_FOR_NODE = "waiting-for-node"  # a node on this machine: its process answers
    WAITING_FOR_SSH = "waiting-for-ssh"  # a node elsewhere: its sshd answers
    SYNCING_FILES = "syncing-files"
    SETTING_UP = "setting-up"
    STARTING_RAY = "starting-ray"
    READY = "ready"
    FAILED = "failed"


RAY_GCS_PORT = 6379  # Ray's default, where a head's GCS listens unless told otherwise


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
    ERROR = "rayctl-error"  # why the last bootstrap failed (its output's tail)
    # On the head: when autostop stopped the cluster (Unix seconds; `up` clears it).
    AUTOSTOPPED = "rayctl-autostopped"


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
        return int(self.tags.get(Tag.GCS_PORT, RAY_GCS_PORT))

    @property
    def gcs_address(self) -> str:
        """On the head: where Ray's GCS listens (what RAY_ADDRESS and workers point at)."""
        return f"{self.internal_ip}:{self.gcs_port}"


@dataclass(frozen=True)
class RayStart:
    """What a provider adds to one `ray start` of a node: flags, and the tags it recorded
    for that start (a head's GCS and dashboard ports), so the caller need not list again."""

    args: list[str]
    tags: Mapping[str, str] = field(default_factory=dict)
