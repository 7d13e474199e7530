"""The local provider's declaration: nodes are processes on this machine."""

from __future__ import annotations

from typing import ClassVar, Literal

from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ProviderSettings


class LocalProviderConfig(ProviderSettings):
    """Nodes are processes on this machine, each on its own 127.0.0.x address."""

    type: Literal["local"]
    capabilities: ClassVar[Capabilities] = Capabilities(
        shares_filesystem=True,
        runtime_preinstalled=True,
        removes_itself=True,
        stops_nodes=True,
    )


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
)
