"""The fake's whole state, behind one lock, with a lazy clock for delayed transitions."""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..plumbing import AddressPool, Faults, documentation_addresses
from .errors import ApiError, OperationError, not_found
from .records import Disk, Firewall, Instance, Operation, ServiceAccount, timestamp

E = TypeVar("E", ApiError, OperationError)


@dataclass
class Policy:
    """An allow policy: bindings of a role (with an IAM condition or none) to members."""

    # (role, condition's JSON or "") -> members
    bindings: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    version: int = 1

    @property
    def etag(self) -> str:
        return f"BwY{self.version:08d}="

    def resource(self) -> dict:
        bindings = []
        for (role, condition), members in sorted(self.bindings.items()):
            if members:
                binding = {"role": role, "members": sorted(members)}
                if condition:
                    binding["condition"] = json.loads(condition)
                bindings.append(binding)
        conditional = any("condition" in b for b in bindings)
        return {"version": 3 if conditional else 1, "etag": self.etag, "bindings": bindings}

    def replace(self, policy: dict) -> None:
        """setIamPolicy: `policy` replaces the bindings if its etag is current. A conditional
        binding needs the policy's version 3, as IAM requires."""
        if policy.get("etag", self.etag) != self.etag:
            raise ApiError(
                409,
                "There were concurrent policy changes. Please retry the whole "
                "read-modify-write with exponential backoff.",
                "aborted",
            )
        bindings: dict[tuple[str, str], set[str]] = {}
        for binding in policy.get("bindings", []):
            condition = binding.get("condition")
            if condition and policy.get("version", 1) < 3:
                raise ApiError(
                    400,
                    "Conditional role bindings require policy version 3 or greater.",
                    "badRequest",
                )
            key = (binding["role"], json.dumps(condition, sort_keys=True) if condition else "")
            bindings.setdefault(key, set()).update(binding.get("members", []))
        self.bindings = bindings
        self.version += 1

    def member_deleted(self, member: str, unique_id: str) -> None:
        """What IAM does to the bindings of a deleted service account: they stay, naming it
        `deleted:...?uid=` (inert: a new account of that email is another principal), until
        IAM drops them (within 60 days) or someone removes them."""
        for members in self.bindings.values():
            if member in members:
                members.remove(member)
                members.add(f"deleted:{member}?uid={unique_id}")


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
        clock: Callable[[], float],
    ) -> None:
        self.clock = clock  # seconds, monotonic; tests may drive it by hand
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified whenever events ran
        self.project = project
        self.zones = zones
        self.operation_seconds = operation_seconds
        self.boot_seconds = boot_seconds
        self.granted_permissions = granted_permissions  # None: every permission
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, str]]] = []  # (API method id, path), in order
        self.faults = Faults()
        self.unavailable: set[tuple[str, str]] = set()  # (zone, machine type)
        self.private_ips = AddressPool.of(subnet, first_ip)
        self.public_ips = documentation_addresses()  # a test must never contact a natIP
        self.instances: dict[tuple[str, str], Instance] = {}  # (zone, name)
        self.disks: dict[tuple[str, str], Disk] = {}
        self.firewalls: dict[str, Firewall] = {}
        self.operations: dict[str, Operation] = {}
        self.service_accounts: dict[str, ServiceAccount] = {}  # email
        self.policy = Policy()
        self.account_policies: dict[str, Policy] = {}  # email -> the account's own policy
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
            heapq.heappush(self._events, (self.clock() + seconds, next(self._event_seq), event))

    def advance(self) -> None:
        ran = False
        while self._events and self._events[0][0] <= self.clock():
            heapq.heappop(self._events)[2]()
            ran = True
        if ran:
            self.changed.notify_all()

    def next_event_in(self) -> float | None:
        return max(0.0, self._events[0][0] - self.clock()) if self._events else None

    # -- faults ------------------------------------------------------------------------------

    def take_fault(self, method: str, zone: str | None, kind: type[E]) -> E | None:
        """The error of the first fault set for this call and zone, counting it down."""
        return self.faults.take(method, zone, kind)

    # -- lookups -----------------------------------------------------------------------------

    def check_zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise ApiError(
                400, f"Invalid value for field 'zone': '{zone}'. Unknown zone.", "invalid"
            )

    @property
    def regions(self) -> set[str]:
        return {zone.rsplit("-", 1)[0] for zone in self.zones}

    def check_region(self, region: str) -> None:
        if region not in self.regions:
            raise ApiError(
                400, f"Invalid value for field 'region': '{region}'. Unknown region.", "invalid"
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
        scope: str,
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
            scope=scope,
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

    def operation(self, scope: str, name: str) -> Operation:
        op = self.operations.get(name)
        if op is None or op.scope != scope:
            raise not_found(f"projects/{self.project}/{scope}/operations/{name}")
        if op.status == "PENDING":
            op.status = "RUNNING"  # first seen pending, then running until done
        return op
