"""Where nodes come from: one module per place, behind the NodeProvider protocol."""

from __future__ import annotations

import importlib
from pathlib import Path

from rayctl.config.schema import ClusterConfig
from rayctl.errors import RayctlError
from rayctl.providers.base import Node, NodeKind, NodeProvider, NodeState, NodeStatus, Tag

# provider type -> "module:class"; modules (and their cloud SDKs) load only when used.
_PROVIDERS: dict[str, str] = {
    "local": "rayctl.providers.local:LocalProvider",
    "ssh": "rayctl.providers.ssh:SSHProvider",
    "aws": "rayctl.providers.aws:AWSProvider",
}


# provider type -> the extra that installs its SDK
_EXTRAS: dict[str, str] = {"ssh": "ssh", "aws": "aws"}


def make_provider(config: ClusterConfig, *, home: Path) -> NodeProvider:
    ptype = config.provider.type
    module_name, class_name = _PROVIDERS[ptype].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if ptype not in _EXTRAS:
            raise
        raise RayctlError(
            f"the {ptype} provider needs {exc.name}: pip install 'rayctl[{_EXTRAS[ptype]}]'"
        ) from None
    return getattr(module, class_name)(config, home=home)


__all__ = ["Node", "NodeKind", "NodeProvider", "NodeState", "NodeStatus", "Tag", "make_provider"]
