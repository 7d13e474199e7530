"""rayctl: a cluster launcher and demand-driven autoscaler for Ray.

`rayctl.Cluster` is the Python API (rayctl.api). It is imported on first use, so that
`import rayctl.config` or `rayctl --help` does not load the operations behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayctl.api import Cluster, Job

__version__ = "0.1.0"
__all__ = ["Cluster", "Job"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rayctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'rayctl' has no attribute {name!r}")
