"""compute.zoneOperations and compute.globalOperations: get and wait."""

from __future__ import annotations

import time

from .routing import Call, Route
from .state import State

WAIT_LIMIT_S = 120  # GCE's wait answers after about two minutes even when not DONE


def _wait(s: State, zone: str | None, name: str) -> dict:
    """Block (releasing the lock) until the operation is DONE or the wait limit passes."""
    op = s.operation(zone, name)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while op.status != "DONE" and (left := deadline - time.monotonic()) > 0:
        next_event = s.next_event_in()
        s.changed.wait(left if next_event is None else min(left, next_event))
        s.advance()
    return op.resource()


def zone_get(s: State, call: Call, project: str, zone: str, operation: str) -> dict:
    s.check_zone(zone)
    return s.operation(zone, operation).resource()


def zone_wait(s: State, call: Call, project: str, zone: str, operation: str) -> dict:
    s.check_zone(zone)
    return _wait(s, zone, operation)


def global_get(s: State, call: Call, project: str, operation: str) -> dict:
    return s.operation(None, operation).resource()


def global_wait(s: State, call: Call, project: str, operation: str) -> dict:
    return _wait(s, None, operation)


_ZONE_OPS = "/compute/v1/projects/<project>/zones/<zone>/operations/<operation>"
_GLOBAL_OPS = "/compute/v1/projects/<project>/global/operations/<operation>"
ROUTES = [
    Route("GET", _ZONE_OPS, "compute.zoneOperations.get", zone_get),
    Route("POST", f"{_ZONE_OPS}/wait", "compute.zoneOperations.wait", zone_wait),
    Route("GET", _GLOBAL_OPS, "compute.globalOperations.get", global_get),
    Route("POST", f"{_GLOBAL_OPS}/wait", "compute.globalOperations.wait", global_wait),
]
