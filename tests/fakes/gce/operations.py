"""compute.zoneOperations, regionOperations and globalOperations: get and wait."""

from __future__ import annotations

from .routing import Call, Route
from .state import State

WAIT_LIMIT_S = 120  # GCE's wait answers after about two minutes even when not DONE


def _wait(s: State, scope: str, name: str) -> dict:
    """Block (releasing the lock) until the operation is DONE or the wait limit passes."""
    op = s.operation(scope, name)
    deadline = s.clock() + WAIT_LIMIT_S
    while op.status != "DONE" and (left := deadline - s.clock()) > 0:
        next_event = s.next_event_in()
        s.changed.wait(left if next_event is None else min(left, next_event))
        s.advance()
    return op.resource()


def zone_get(s: State, call: Call, project: str, zone: str, operation: str) -> dict:
    s.check_zone(zone)
    return s.operation(f"zones/{zone}", operation).resource()


def zone_wait(s: State, call: Call, project: str, zone: str, operation: str) -> dict:
    s.check_zone(zone)
    return _wait(s, f"zones/{zone}", operation)


def global_get(s: State, call: Call, project: str, operation: str) -> dict:
    return s.operation("global", operation).resource()


def global_wait(s: State, call: Call, project: str, operation: str) -> dict:
    return _wait(s, "global", operation)


def region_get(s: State, call: Call, project: str, region: str, operation: str) -> dict:
    s.check_region(region)
    return s.operation(f"regions/{region}", operation).resource()


def region_wait(s: State, call: Call, project: str, region: str, operation: str) -> dict:
    s.check_region(region)
    return _wait(s, f"regions/{region}", operation)


_ZONE_OPS = "/compute/v1/projects/<project>/zones/<zone>/operations/<operation>"
_REGION_OPS = "/compute/v1/projects/<project>/regions/<region>/operations/<operation>"
_GLOBAL_OPS = "/compute/v1/projects/<project>/global/operations/<operation>"
ROUTES = [
    Route("GET", _ZONE_OPS, "compute.zoneOperations.get", zone_get),
    Route("POST", f"{_ZONE_OPS}/wait", "compute.zoneOperations.wait", zone_wait),
    Route("GET", _REGION_OPS, "compute.regionOperations.get", region_get),
    Route("POST", f"{_REGION_OPS}/wait", "compute.regionOperations.wait", region_wait),
    Route("GET", _GLOBAL_OPS, "compute.globalOperations.get", global_get),
    Route("POST", f"{_GLOBAL_OPS}/wait", "compute.globalOperations.wait", global_wait),
]
