"""A provider that exists only for tests, declared and registered the way a new provider
would be (a ProviderSpec), to show that the registry alone makes it validated, listed by
`rayctl schema` and brought up by `up`. Its nodes are local processes (it reuses the local
provider's machinery); what is its own: a required `shelf` setting, a check that refuses a
shelf named "forbidden", and a tag with the shelf on every node it creates."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from rayctl.config.findings import Findings
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings
from rayctl.providers.base import Node
from rayctl.providers.local.instances import LocalProvider
from rayctl.providers.registry import PLUGINS_ENV
from rayctl.runtime.runner import CommandRunner

SHELF_TAG = "sandbox-shelf"
REPO = Path(__file__).resolve().parent.parent


class SandboxConfig(ProviderSettings):
    """Nodes on this machine, each labelled with the shelf it sits on."""

    type: Literal["sandbox"]
    shelf: str = Field(min_length=1, description="The shelf every node is tagged with.")
    capabilities: ClassVar[Capabilities] = Capabilities(
        shares_filesystem=True, runtime_preinstalled=True
    )


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    provider = config.provider
    assert isinstance(provider, SandboxConfig)
    if provider.shelf == "forbidden":
        found.problems.append((("provider", "shelf"), "that shelf is off limits"))
    return config


class SandboxProvider(LocalProvider):
    def __init__(self, config: ClusterConfig, *, home: Path) -> None:
        super().__init__(config, home=home)
        assert isinstance(config.provider, SandboxConfig)
        self.shelf = config.provider.shelf

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        return super().create_nodes(node_type, count, {**tags, SHELF_TAG: self.shelf})

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The head's monitor is another process: it learns of this provider from the
        registry's plugin variable, and finds this module on its path."""
        config, env = super().prepare_head(config, head, runner)
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return config, {**env, PLUGINS_ENV: f"{__name__}:SPEC", "PYTHONPATH": path}


SPEC = ProviderSpec(
    kind="sandbox",
    model=SandboxConfig,
    factory=f"{__name__}:SandboxProvider",
    defaults={
        "head_node_type": "head",
        "available_node_types": {"head": {}, "worker": {"min_workers": 1}},
    },
    node_type_defaults={"resources": {"CPU": 1}},
    check=check,
)
