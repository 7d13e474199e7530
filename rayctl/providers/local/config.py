"""The local provider's declaration: nodes are processes on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from rayctl.config.findings import Findings
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings
from rayctl.providers.local.memory import machine_memory_bytes, with_memory_shares


class LocalProviderConfig(ProviderSettings):
    """Nodes are processes on this machine, each on its own 127.0.0.x address."""

    type: Literal["local"]
    capabilities: ClassVar[Capabilities] = Capabilities(
        shares_filesystem=True, runtime_preinstalled=True
    )


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """Every node's memory and object store, so that Ray and the autoscaler count no more
    memory than this machine has (see memory.py)."""
    return with_memory_shares(config, machine_memory_bytes())


SPEC = ProviderSpec(
    kind="local",
    model=LocalProviderConfig,
    factory="rayctl.providers.local.instances:LocalProvider",
    defaults={
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}},
            "ray.worker.default": {"resources": {"CPU": 1}},
        },
    },
    # Local nodes get one CPU unless told otherwise: Ray would detect every core of the
    # machine for each node, which the scheduler cannot know.
    node_type_defaults={"resources": {"CPU": 1}},
    check=check,
)
