"""Where nodes come from: one module per place, behind the NodeProvider protocol."""

from __future__ import annotations

import importlib
from pathlib import Path

from rayctl.config.schema import ClusterConfig
from rayctl.providers.base import Node, NodeKind, NodeProvider, NodeState, NodeStatus, Tag

# provider type -> "module:class"; modules (and their cloud SDKs) load only when used.
_PROVIDERS: dict[str, str] = {
    "local": "rayctl.providers.local:LocalProvider",
}


def make_provider(config: ClusterConfig, *, home: Path) -> NodeProvider:
    module_name, class_name = _PROVIDERS[config.provider.type].split(":")
    provider_class = getattr(importlib.import_module(module_name), class_name)
    return provider_class(config, home=home)


__all__ = ["Node", "NodeKind", "NodeProvider", "NodeState", "NodeStatus", "Tag", "make_provider"]
