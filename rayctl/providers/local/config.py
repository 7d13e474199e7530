"""The local provider's declaration: nodes are processes on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal

from rayctl.config.findings import Findings
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.runtime_packages import node_requirements, unmet_requirements
from rayctl.config.schema import (
    DEFAULT_RAY_EXTRAS,
    Capabilities,
    ClusterConfig,
    ProviderSettings,
)
from rayctl.providers.local.memory import machine_memory_bytes, with_memory_shares


class LocalProviderConfig(ProviderSettings):
    """Nodes are processes on this machine, each on its own 127.0.0.x address."""

    type: Literal["local"]
    capabilities: ClassVar[Capabilities] = Capabilities(
        shares_filesystem=True,
        runtime_preinstalled=True,
        removes_itself=True,
        stops_nodes=True,
    )


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """Local nodes run the Python running rayctl, which rayctl does not install into: it
    must have Ray's extras and the packages the config asks for. Returns the config with
    every node's memory and object store, so that Ray and the autoscaler count no more
    memory than this machine has (see memory.py)."""
    runtime = config.rayctl.runtime
    invalid = any(path[:2] == ("rayctl", "runtime") for path, _ in found.problems)
    if runtime.python is None and not invalid:
        ray, *packages = node_requirements(runtime)
        wanted = [(("packages", i), p) for i, p in enumerate(packages)]
        if not set(runtime.ray_extras) <= set(DEFAULT_RAY_EXTRAS):  # else rayctl's own
            wanted.insert(0, (("ray_extras",), ray))
        for key, requirement in wanted:
            if unmet_requirements([requirement]):
                found.problems.append(
                    (
                        ("rayctl", "runtime", *key),
                        f"local nodes run this Python ({sys.executable}), which lacks "
                        f"{requirement}: install it here (pip install '{requirement}')",
                    )
                )
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
