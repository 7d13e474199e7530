"""The fake's whole state, behind one lock, with a lazy clock for delayed transitions."""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import ApiError, OperationError, not_found
from .records import Disk, Firewall, Instance, Operation, ServiceAccount, timestamp

E = TypeVar("E", ApiError, OperationError)


@dataclass
class Fault:
    methods: frozenset[str]  # GCE method ids, e.g. "compute.instances.bulkInsert"; empty: all
    zone: str | None  # None: any zone
    error: ApiError | OperationError
    times: int | None  # None: until cleared

    def matches(self, method: str, zone: str | None) -> bool:
        return (not self.methods or method in self.methods) and self.zone in (None, zone)


@dataclass
class AddressPool:
    """Private addresses handed out lowest first, as a subnet's DHCP does; freed on delete."""

    subnet: ipaddress.IPv4Network
    first: ipaddress.IPv4Address
    used: set[ipaddress.IPv4Address] = field(default_factory=set)

    def take(self) -> str:
        for ip in self.subnet.hosts():
            if ip >= self.first and ip not in self.used:
                self.used.add(ip)
                return str(ip)
        raise RuntimeError(f"the fake's subnet {self.subnet} is full: give it a larger one")

    def give_back(self, ip: str) -> None:
        self.used.discard(ipaddress.IPv4Address(ip))


@dataclass
class Policy:
    bindings: dict[str, set[str]] = field(default_factory=dict)  # role -> members
    version: int = 1

    @property
    def etag(self) -> str:
        return f"BwY{self.version:08d}="

    def resource(self) -> dict:
        return {
            "version": 1,
            "etag": self.etag,
            "bindings": [
                {"role": role, "members": sorted(members)}
                for role, members in sorted(self.bindings.items())
                if members
            ],
        }


class State:
    """Everything the fake knows. Handlers run with `lock` held (the server takes it)."""

    def __init__(
        self,
        *,
        project: str,
        zones: tuple[str, ...],
        subnet: str,
        first_ip: str,
        operation_seconds: float,
        boot_seconds: float,
        granted_permissions: frozenset[str] | None,
    ) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified whenever events ran
        self.project = project
        self.zones = zones
        self.operation_seconds = operation_seconds
        self.boot_seconds = boot_seconds
        self.granted_permissions = granted_permissions  # None: every permission
        self.calls: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.unavailable: set[tuple[str, str]] = set()  # (zone, machine type)
        self.private_ips = AddressPool(
            ipaddress.IPv4Network(subnet), ipaddress.IPv4Address(first_ip)
        )
        # TEST-NET-3 (RFC 5737): documentation addresses that route nowhere. A test must
        # never contact an instance's natIP.
        self.public_ips = AddressPool(
            ipaddress.IPv4Network("203.0.113.0/24"), ipaddress.IPv4Address("203.0.113.1")
        )
        self.instances: dict[tuple[str, str], Instance] = {}  # (zone, name)
        self.disks: dict[tuple[str, str], Disk] = {}
        self.firewalls: dict[str, Firewall] = {}
        self.operations: dict[str, Operation] = {}
        self.service_accounts: dict[str, ServiceAccount] = {}  # email
        self.policy = Policy()
        self._ids = itertools.count(4_000_000_000_000_000_001)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._event_seq = itertools.count()

    # -- ids and time ------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(next(self._ids))  # GCE ids are uint64 sent as decimal strings

    def after(self, seconds: float, event: Callable[[], None]) -> None:
        """Run `event` once `seconds` have passed (now, if none): lazily, on the next call."""
        if seconds <= 0:
            event()
        else:
            heapq.heappush(self._events, (time.monotonic() + seconds, next(self._event_seq), event))

    def advance(self) -> None:
        ran = False
        while self._events and self._events[0][0] <= time.monotonic():
            heapq.heappop(self._events)[2]()
            ran = True
        if ran:
            self.changed.notify_all()

    def next_event_in(self) -> float | None:
        return max(0.0, self._events[0][0] - time.monotonic()) if self._events else None

    # -- faults ------------------------------------------------------------------------------

    def take_fault(self, method: str, zone: str | None, kind: type[E]) -> E | None:
        """The error of the first fault set for this call and zone, counting it down."""
        for fault in self.faults:
            if fault.matches(method, zone) and isinstance(fault.error, kind):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                return fault.error
        return None

    # -- lookups -----------------------------------------------------------------------------

    def check_zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise ApiError(
                400, f"Invalid value for field 'zone': '{zone}'. Unknown zone.", "invalid"
            )

    def instance(self, zone: str, name: str) -> Instance:
        self.check_zone(zone)
        try:
            return self.instances[zone, name]
        except KeyError:
            raise not_found(f"projects/{self.project}/zones/{zone}/instances/{name}") from None

    def disk(self, zone: str, name: str) -> Disk:
        self.check_zone(zone)
        try:
            return self.disks[zone, name]
        except KeyError:
            raise not_found(f"projects/{self.project}/zones/{zone}/disks/{name}") from None

    # -- operations --------------------------------------------------------------------------

    def start_operation(
        self,
        operation_type: str,
        target_link: str,
        *,
        zone: str | None,
        target_id: str | None = None,
        failure: OperationError | None = None,
        effect: Callable[[], None] | None = None,
        metadata: dict | None = None,
    ) -> dict:
        """Record an operation that ends DONE after `operation_seconds`, applying `effect`
        then, or failing with `failure`. Returns its JSON as the call's response."""
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}"
        op = Operation(
            id=self.new_id(),
            project=self.project,
            name=name,
            zone=zone,
            operation_type=operation_type,
            target_link=target_link,
            target_id=target_id,
            metadata=metadata or {},
        )
        self.operations[name] = op

        def finish() -> None:
            if failure:
                op.failure = failure.fields()
            elif effect:
                effect()
            op.status, op.ended = "DONE", timestamp()

        self.after(self.operation_seconds, finish)
        return op.resource()

    def operation(self, zone: str | None, name: str) -> Operation:
        op = self.operations.get(name)
        if op is None or op.zone != zone:
            scope = f"zones/{zone}" if zone else "global"
            raise not_found(f"projects/{self.project}/{scope}/operations/{name}")
        if op.status == "PENDING":
            op.status = "RUNNING"  # first seen pending, then running until done
        return op
