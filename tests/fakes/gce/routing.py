"""What a handler gets: the parsed call. Each resource module lists its routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    body: dict
    query: dict[str, str]


@dataclass(frozen=True)
class Route:
    method: str  # HTTP method
    path: str  # werkzeug rule, e.g. /compute/v1/projects/<project>/zones/<zone>/instances
    name: str  # the API's method id, e.g. compute.instances.insert; calls are counted by it
    handler: Callable[..., dict]  # handler(state, call, **path_parameters) -> response body
