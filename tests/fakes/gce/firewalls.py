"""compute.firewalls: insert, get, list, delete (global operations)."""

from __future__ import annotations

import re

from .errors import already_exists, invalid, not_found
from .listing import list_response
from .records import COMPUTE, Firewall
from .routing import Call, Route
from .state import State

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def _link(s: State, name: str) -> str:
    return f"{COMPUTE}projects/{s.project}/global/firewalls/{name}"


def _firewall(s: State, name: str) -> Firewall:
    try:
        return s.firewalls[name]
    except KeyError:
        raise not_found(f"projects/{s.project}/global/firewalls/{name}") from None


def insert(s: State, call: Call, project: str) -> dict:
    spec = {k: v for k, v in call.body.items() if k not in ("kind", "id", "selfLink")}
    name = spec.pop("name", "")
    if not _NAME.fullmatch(name):
        raise invalid(f"Invalid value for field 'resource.name': '{name}'.")
    if name in s.firewalls:
        raise already_exists(f"projects/{s.project}/global/firewalls/{name}")
    if not spec.get("allowed") and not spec.get("denied"):
        raise invalid("Invalid value for field 'resource': exactly one of allowed or denied.")
    rule = Firewall(id=s.new_id(), project=s.project, name=name, spec=spec)

    def create() -> None:
        s.firewalls[name] = rule

    return s.start_operation(
        "insert", _link(s, name), scope="global", target_id=rule.id, effect=create
    )


def get(s: State, call: Call, project: str, firewall: str) -> dict:
    return _firewall(s, firewall).resource()


def list_(s: State, call: Call, project: str) -> dict:
    found = [s.firewalls[n].resource() for n in sorted(s.firewalls)]
    link = f"{COMPUTE}projects/{s.project}/global/firewalls"
    return list_response("compute#firewallList", link, found, call.query)


def delete(s: State, call: Call, project: str, firewall: str) -> dict:
    rule = _firewall(s, firewall)

    def remove() -> None:
        s.firewalls.pop(firewall, None)

    return s.start_operation(
        "delete", _link(s, firewall), scope="global", target_id=rule.id, effect=remove
    )


_GLOBAL = "/compute/v1/projects/<project>/global/firewalls"
ROUTES = [
    Route("POST", _GLOBAL, "compute.firewalls.insert", insert),
    Route("GET", _GLOBAL, "compute.firewalls.list", list_),
    Route("GET", f"{_GLOBAL}/<firewall>", "compute.firewalls.get", get),
    Route("DELETE", f"{_GLOBAL}/<firewall>", "compute.firewalls.delete", delete),
]
