"""List filters and paging as Compute Engine's list and aggregatedList calls apply them.

Filters: terms `FIELD OP VALUE` joined by AND (or by whitespace between parenthesised terms),
where FIELD is a dotted path into the resource (`labels.ray-cluster-name`, `status`, `name`),
OP is `=`, `!=`, `:` (substring; `:*` tests presence), `eq` or `ne` (regular expressions),
and VALUE is bare or double-quoted. GCE also accepts OR and NOT; the fake refuses them with
GCE's 400 rather than answer wrongly.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from .errors import ApiError, invalid

MAX_RESULTS = 500  # GCE's default and largest page

_TERM = re.compile(
    r"""\(?\s*(?P<field>[A-Za-z][\w.\-]*)\s*(?P<op>!=|=|:|\beq\b|\bne\b)\s*
        (?P<value>"[^"]*"|[^\s()"]+)\s*\)?""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str

    def holds(self, resource: dict) -> bool:
        found: object = resource
        for part in self.field.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if self.op == ":" and self.value == "*":
            return found is not None
        text = (
            "" if found is None else str(found).lower() if isinstance(found, bool) else str(found)
        )
        match self.op:
            case "=":
                return found is not None and text == self.value
            case "!=":
                return text != self.value
            case ":":
                return self.value in text
            case "eq":
                return re.fullmatch(self.value, text) is not None
            case _:  # ne
                return re.fullmatch(self.value, text) is None


def parse_filter(text: str) -> list[Term]:
    terms, rest = [], text
    for m in _TERM.finditer(text):
        terms.append(Term(m["field"], m["op"], m["value"].strip('"')))
        rest = rest.replace(m[0], " ", 1)
    if re.sub(r"\bAND\b", " ", rest).strip() or (text.strip() and not terms):
        raise invalid(f"Invalid list filter expression: {text!r}.")
    return terms


def matching(resources: list[dict], filter_text: str) -> list[dict]:
    terms = parse_filter(filter_text)
    return [r for r in resources if all(t.holds(r) for t in terms)]


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_token: str | None


def page(items: list[dict], query: dict[str, str]) -> Page:
    """Slice `items` (already in GCE's order, by name) by maxResults and pageToken."""
    try:
        size = int(query.get("maxResults", MAX_RESULTS))
    except ValueError:
        raise invalid(f"Invalid value for field 'maxResults': {query['maxResults']!r}.") from None
    if not 0 <= size <= MAX_RESULTS:
        raise invalid(
            f"Invalid value for field 'maxResults': {size}. Must be less than or equal to 500"
        )
    size = size or MAX_RESULTS
    start = _offset(query.get("pageToken", ""))
    end = start + size
    return Page(items[start:end], _token(end) if end < len(items) else None)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token).decode().partition(":")
        if kind == "offset":
            return int(number)
    except ValueError:
        pass
    raise ApiError(400, "Invalid value for field 'pageToken'.", "invalid")


def list_response(kind: str, self_link: str, items: list[dict], query: dict[str, str]) -> dict:
    """A zonal or global list call's answer (`compute#instanceList` and the like)."""
    selected = page(matching(items, query.get("filter", "")), query)
    body: dict = {"kind": kind, "id": self_link.removeprefix("https://www."), "selfLink": self_link}
    if selected.items:
        body["items"] = selected.items
    if selected.next_token:
        body["nextPageToken"] = selected.next_token
    return body


def aggregated_response(
    kind: str,
    key: str,
    by_zone: dict[str, list[dict]],
    query: dict[str, str],
    self_link: str,
) -> dict:
    """An aggregatedList answer: `items` keyed "zones/ZONE", one entry per zone, with a
    NO_RESULTS_ON_PAGE warning where a zone has nothing on this page, as GCE sends."""
    flat = [(zone, r) for zone in sorted(by_zone) for r in by_zone[zone]]
    kept = {id(r) for r in matching([r for _, r in flat], query.get("filter", ""))}
    selected = page([{"zone": z, "r": r} for z, r in flat if id(r) in kept], query)
    items: dict[str, dict] = {
        f"zones/{zone}": {"warning": _no_results(zone)} for zone in sorted(by_zone)
    }
    for entry in selected.items:
        items[f"zones/{entry['zone']}"].setdefault(key, []).append(entry["r"])
    for scoped in items.values():
        if key in scoped:
            del scoped["warning"]
    body: dict = {
        "kind": kind,
        "id": self_link.removeprefix("https://www."),
        "items": items,
        "selfLink": self_link,
    }
    if selected.next_token:
        body["nextPageToken"] = selected.next_token
    return body


def _no_results(zone: str) -> dict:
    return {
        "code": "NO_RESULTS_ON_PAGE",
        "message": "There are no results for scope 'zones/" + zone + "' on this page.",
        "data": [{"key": "scope", "value": "zones/" + zone}],
    }
