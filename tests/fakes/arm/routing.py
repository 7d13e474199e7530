"""The parsed call a handler gets, what it answers, and ARM's long-running-operation replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from .state import Operation, State


@dataclass(frozen=True)
class Call:
    base: str  # http://127.0.0.1:PORT, for the absolute URLs ARM puts in headers and nextLink
    path: str
    query: dict[str, str]
    body: dict

    @property
    def api_version(self) -> str:
        return self.query["api-version"]


@dataclass
class Reply:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


def lro(
    s: State, call: Call, op: Operation, provider: str, status: int, body: dict | None
) -> Reply:
    """ARM's answer to work it accepted: poll `Azure-AsyncOperation` for the status body,
    `Location` for the result (202 until done)."""
    base = f"{call.base}/subscriptions/{s.subscription}/providers/{provider}/locations/{s.location}"
    version = f"?api-version={call.api_version}"
    headers = {
        "Azure-AsyncOperation": f"{base}/operations/{op.id}{version}",
        "Retry-After": "0",  # ARM says 10 or so; the fake's operations are quick
    }
    if status == 202:
        headers["Location"] = f"{base}/operationResults/{op.id}{version}"
    return Reply(status, body, headers)


def page(call: Call, items: list[dict], size: int) -> Reply:
    """One page of a list and, when more follow, an absolute nextLink with $skiptoken."""
    start = int(call.query.get("$skiptoken", "0"))
    body: dict = {"value": items[start : start + size]}
    if start + size < len(items):
        query = {**call.query, "$skiptoken": str(start + size)}
        body["nextLink"] = f"{call.base}{call.path}?{urlencode(query)}"
    return Reply(200, body)
