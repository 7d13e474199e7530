"""How a kind of provider declares itself to the config layer: its `provider:` model, its
defaults and its checks. Each provider's package fills one ProviderSpec in a light module
(rayctl/providers/<kind>/config.py, no SDK imported); rayctl.providers.registry lists them and
passes them to the loader, so the config layer never names a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayctl.config.findings import Findings
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings

# A provider's own rules, run on a config that passed the schema: add (key path, message)
# findings, return the config with paths resolved (e.g. the SSH key made absolute).
Check = Callable[[ClusterConfig, Path, Findings], ClusterConfig]


def no_check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    return config


@dataclass(frozen=True)
class ProviderSpec:
    kind: str  # the value of `provider.type`
    model: type[ProviderSettings]  # the `provider:` section (type: Literal[kind])
    factory: str  # "module:attribute" of the NodeProvider class, imported only when used
    # Merged deeply under the user's config; `available_node_types` and `head_node_type` go
    # together, and only when the user names no node types.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    node_type_defaults: Mapping[str, Any] = field(default_factory=dict)  # under every type
    # Adjusts the filled raw config, given the user's (e.g. max_workers from the pool's size).
    fill: Callable[[Mapping[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    # True for another kind's raw `provider:` section that this provider takes over
    # (Ray's `type: local` with head_ip is the ssh provider).
    claims: Callable[[Mapping[str, Any]], bool] | None = None
    check: Check = no_check
    extra: str | None = None  # the pip extra that installs its SDK: rayctl[<extra>]

    @property
    def capabilities(self) -> Capabilities:
        return self.model.capabilities
