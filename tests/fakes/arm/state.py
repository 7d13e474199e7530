"""The fake's whole state behind one lock: resources by id, async operations, faults,
address pools, and a lazy clock for delayed transitions."""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..plumbing import AddressPool, Faults, documentation_addresses
from .errors import OperationFailure, group_not_found, not_found


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Resource:
    """ARM's common envelope; what differs per type lives in `properties`, as on the wire."""

    id: str  # the case it was created with; looked up case-insensitively
    type: str  # e.g. Microsoft.Compute/virtualMachines
    location: str | None
    properties: dict
    tags: dict[str, str] = field(default_factory=dict)
    zones: list[str] | None = None
    identity: dict | None = None

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[1]

    @property
    def group(self) -> str:
        return self.id.split("/")[4]

    def resource(self) -> dict:
        body = {"id": self.id, "name": self.name, "type": self.type}
        if self.location is not None:
            body |= {"location": self.location, "tags": self.tags}
        if self.zones:
            body["zones"] = self.zones
        if self.identity:
            body["identity"] = self.identity
        return body | {"properties": self.properties}


@dataclass
class Operation:
    id: str
    failure: OperationFailure | None = None
    status: str = "InProgress"  # then Succeeded or Failed
    started: str = field(default_factory=now)
    ended: str | None = None

    def resource(self) -> dict:
        body: dict = {"name": self.id, "status": self.status, "startTime": self.started}
        if self.ended:
            body["endTime"] = self.ended
        if self.failure and self.status == "Failed":
            body["error"] = self.failure.error()
        return body


class State:
    """Everything the fake knows. Handlers run with `lock` held (the server takes it)."""

    def __init__(
        self,
        *,
        subscription: str,
        tenant: str,
        location: str,
        zones: tuple[str, ...],
        subnet: str,
        first_ip: str,
        page_size: int,
        operation_seconds: float,
        nic_reservation_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.subscription = subscription
        self.tenant = tenant
        self.location = location
        self.zones = zones
        self.page_size = page_size
        self.operation_seconds = operation_seconds
        self.nic_reservation_seconds = nic_reservation_seconds
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (operation id, path), in order
        self.call_times: dict[str, list[float]] = {}
        self.faults = Faults()
        self.unavailable: set[tuple[str | None, str]] = set()  # (zone, vm size)
        self.private_ips = AddressPool.of(subnet, first_ip)
        self.public_ips = documentation_addresses()  # a test must never contact one
        self.groups: dict[str, Resource] = {}  # lower-case name
        self.resources: dict[str, Resource] = {}  # lower-case id
        self.operations: dict[str, Operation] = {}
        self.role_assignments: dict[str, Resource] = {}  # lower-case name (a GUID)
        self.reserved_nics: dict[str, tuple[float, str]] = {}  # lower-case NIC id -> (until, VM id)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    # -- time ----------------------------------------------------------------------------------

    def after(self, seconds: float, event: Callable[[], None]) -> None:
        """Run `event` once `seconds` have passed (now, if none): lazily, on the next call."""
        if seconds <= 0:
            event()
        else:
            heapq.heappush(self._events, (self.clock() + seconds, next(self._seq), event))

    def advance(self) -> None:
        while self._events and self._events[0][0] <= self.clock():
            heapq.heappop(self._events)[2]()

    # -- resources -------------------------------------------------------------------------------

    def group(self, name: str) -> Resource:
        group = self.groups.get(name.lower())
        if group is None or group.properties["provisioningState"] == "Deleting":
            raise group_not_found(name)
        return group

    def get(self, id_: str) -> Resource:
        found = self.resources.get(id_.lower())
        if found is None:
            parts = id_.split("/")
            self.group(parts[4])
            raise not_found("/".join(parts[6:-1]), parts[-1], parts[4])
        return found

    def find(self, id_: str) -> Resource | None:
        return self.resources.get(id_.lower())

    def put(self, resource: Resource) -> None:
        self.resources[resource.id.lower()] = resource

    def remove(self, id_: str) -> None:
        self.resources.pop(id_.lower(), None)

    def in_group(self, group: str, type_: str | None = None) -> list[Resource]:
        return [
            r
            for r in self.resources.values()
            if r.group.lower() == group.lower()
            and (type_ is None or r.type.lower() == type_.lower())
        ]

    def group_id(self, group: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}"

    # -- async operations ----------------------------------------------------------------------

    def start_operation(
        self,
        effect: Callable[[], None] | None = None,
        failure: OperationFailure | None = None,
        seconds: float | None = None,
    ) -> Operation:
        """An operation that ends after `operation_seconds`: Failed with `failure`, or
        Succeeded after applying `effect`."""
        op = Operation(str(uuid.uuid4()), failure)
        self.operations[op.id] = op

        def finish() -> None:
            if failure:
                op.status = "Failed"
            else:
                if effect:
                    effect()
                op.status = "Succeeded"
            op.ended = now()

        self.after(self.operation_seconds if seconds is None else seconds, finish)
        return op
