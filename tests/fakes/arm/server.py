"""ArmFake: routing of ARM's REST paths (case-insensitive, as ARM's are), authentication,
faults, and the knobs tests turn."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from ..plumbing import FakeServer, Fault, ServedFake
from . import compute, network, resources
from .errors import (
    ArmError,
    OperationFailure,
    allocation_failed,
    quota_exceeded,
    too_many_requests,
)
from .routing import Call, Reply, lro, page
from .state import Resource, State

Create = Callable[[State, Call, str, Resource | None], Reply]
Handler = Callable[[State, Call, Resource], Reply]


def _get(s: State, call: Call, resource: Resource) -> Reply:
    return Reply(200, resource.resource())


def _delete_now(s: State, call: Call, resource: Resource) -> Reply:
    s.remove(resource.id)
    return Reply(200)


def _delete_disk(s: State, call: Call, disk: Resource) -> Reply:
    if "managedBy" in disk.properties:
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Disk {disk.name} is attached to VM {disk.properties['managedBy']}.",
        )
    op = s.start_operation(lambda: s.remove(disk.id))
    return lro(s, call, op, compute.PROVIDER, 202, None)


def _no_create(s: State, call: Call, id_: str, existing: Resource | None) -> Reply:
    raise ArmError(400, "OperationNotAllowed", "The fake creates disks only with their VMs.")


@dataclass(frozen=True)
class Kind:
    """One resource type: its operationId prefix (calls are counted as PREFIX_Get, ...)."""

    type: str
    prefix: str
    create: Create
    delete: Handler
    get: Handler = _get
    long_running_update: bool = False
    actions: dict[str, Handler] = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)  # path segment -> operation prefix


KINDS = {
    k.type.lower(): k
    for k in [
        Kind(
            compute.VM,
            "VirtualMachines",
            compute.create_vm,
            compute.delete_vm,
            compute.get_vm,
            long_running_update=True,
            actions={
                "deallocate": compute.power("deallocating", "deallocated"),
                "start": compute.power("starting", "running"),
                "poweroff": compute.power("stopping", "stopped"),
            },
        ),
        Kind(compute.DISK, "Disks", _no_create, _delete_disk),
        Kind(network.NIC, "NetworkInterfaces", network.create, network.delete),
        Kind(network.PUBLIC_IP, "PublicIPAddresses", network.create, network.delete),
        Kind(
            "Microsoft.Network/virtualNetworks",
            "VirtualNetworks",
            network.create,
            network.delete,
            children={"subnets": "Subnets"},
        ),
        Kind(
            "Microsoft.Network/networkSecurityGroups",
            "NetworkSecurityGroups",
            network.create,
            network.delete,
            children={"securityRules": "SecurityRules"},
        ),
        Kind(resources.IDENTITY, "UserAssignedIdentities", resources.create_identity, _delete_now),
    ]
}

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_IN_GROUP = (
    _SUB + r"/resourceGroups/(?P<group>[^/]+)/providers/(?P<type>[^/]+/[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub1>[^/]+)(?:/(?P<subname>[^/]+))?)?)?"
)
_ROLES = (
    r"(?P<scope>/subscriptions/.*?)/providers/Microsoft\.Authorization/roleAssignments"
    r"(?:/(?P<name>[^/]+))?"
)
_OPERATION = (
    _SUB + r"/providers/[^/]+/locations/[^/]+/(?P<kind>operations|operationResults)/(?P<id>[^/]+)"
)
_GROUP_RESULT = _SUB + r"/operationresults/(?P<id>[^/]+)"
_GROUPS = _SUB + r"/resourcegroups(?:/(?P<group>[^/]+))?"


def _match(pattern: str, path: str) -> re.Match[str] | None:
    return re.fullmatch(pattern, path, re.IGNORECASE)


class ArmFake(ServedFake):
    """A stateful Azure Resource Manager on a random port of `address` (loopback, or an
    address inside a test's network namespace). Use as a context manager; `endpoint` is the
    SDK clients' base_url (see clients.arm_clients)."""

    def __init__(
        self,
        *,
        subscription: str = "00000000-0000-0000-0000-00000000a2b3",
        tenant: str = "00000000-0000-0000-0000-0000000c0ffe",
        location: str = "eastus",
        zones: Iterable[str] = ("1", "2", "3"),
        subnet: str = "10.230.1.0/24",
        first_ip: str = "10.230.1.4",
        page_size: int = 50,
        operation_seconds: float = 0.0,
        nic_reservation_seconds: float = 180.0,
        token: str = "fake-arm-token",
        clock: Callable[[], float] = time.monotonic,
        address: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.state = State(
            subscription=subscription,
            tenant=tenant,
            location=location,
            zones=tuple(zones),
            subnet=subnet,
            first_ip=first_ip,
            page_size=page_size,
            operation_seconds=operation_seconds,
            nic_reservation_seconds=nic_reservation_seconds,
            clock=clock,
        )
        self._server = FakeServer(self._app, address)

    @property
    def subscription(self) -> str:
        return self.state.subscription

    # -- what tests observe ------------------------------------------------------------------

    def call_times(self, operation: str) -> list[float]:
        """When each call of `operation` arrived, by the fake's clock."""
        with self.state.lock:
            return list(self.state.call_times.get(operation, []))

    # -- faults --------------------------------------------------------------------------------

    def allocation_failed(self, zone: str | None, *, times: int | None = None) -> None:
        """VM creation in `zone` (None: a VM without zones) is accepted, and its async
        operation then fails with ZonalAllocationFailed (AllocationFailed without a zone)."""
        self._add("VirtualMachines_CreateOrUpdate", zone, allocation_failed(zone), times)

    def sku_not_available(self, vm_size: str, zone: str | None = None) -> None:
        """Creating a VM of `vm_size` (in `zone`, or anywhere) answers 409 SkuNotAvailable."""
        with self.state.lock:
            self.state.unavailable.add((zone, vm_size))

    def quota_exceeded(self, *, times: int | None = 1) -> None:
        """VM creation answers 409 OperationNotAllowed with a cores-quota message."""
        error = quota_exceeded(self.state.location)
        self._add("VirtualMachines_CreateOrUpdate", None, error, times)

    def rate_limit(
        self, times: int, *, retry_after: float = 0, operations: Iterable[str] = ()
    ) -> None:
        """The next `times` calls (of `operations`, or any) answer 429 with Retry-After."""
        self._faults(frozenset(operations), None, too_many_requests(retry_after), times)

    def fail(
        self,
        operation: str,
        error: ArmError | OperationFailure,
        *,
        zone: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Any other error: an ArmError answers the call; an OperationFailure (VM creation
        only) fails its async operation."""
        self._add(operation, zone, error, times)

    def slow_operations(self, seconds: float) -> None:
        """Async operations started from now on succeed (or fail) only after `seconds`."""
        with self.state.lock:
            self.state.operation_seconds = seconds

    def reserve_nics(self, *, times: int | None = 1) -> None:
        """The next `times` VM deletions leave the VMs' NICs behind, whatever their
        deleteOption, reserved for `nic_reservation_seconds` (NicReservedForAnotherVm on
        delete): what Azure does with the NIC of a VM whose creation failed."""
        self._faults(frozenset({"VirtualMachines_Delete"}), None, compute.NicsKept(), times)

    def evict(self, group: str, vm: str) -> None:
        """Azure reclaims a Spot VM (see compute.evict)."""
        with self.state.lock:
            compute.evict(self.state, self.state.get(self._id(group, compute.VM, vm)))

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.unavailable.clear()

    def _add(self, operation: str, zone: str | None, error: object, times: int | None) -> None:
        self._faults(frozenset({operation}), zone, error, times)

    def _faults(
        self, operations: frozenset[str], zone: str | None, error: object, times: int | None
    ) -> None:
        with self.state.lock:
            self.state.faults.add(Fault(operations, zone, error, times))

    def _id(self, group: str, type_: str, name: str) -> str:
        return f"{self.state.group_id(group)}/providers/{type_}/{name}"

    # -- serving -------------------------------------------------------------------------------

    def _app(self, environ: dict, start_response: object) -> Iterable[bytes]:
        request = Request(environ)
        try:
            reply = self._serve(request)
        except ArmError as e:
            reply = Reply(e.status, e.body(), e.headers)
        body = "" if reply.body is None else json.dumps(reply.body)
        response = Response(body, reply.status, reply.headers, mimetype="application/json")
        return response(environ, start_response)

    def _serve(self, request: Request) -> Reply:
        call = Call(
            base=request.host_url.rstrip("/"),
            path=request.path,
            query=dict(request.args.items()),
            body=request.get_json(silent=True) or {},
        )
        s = self.state
        with s.lock:
            s.advance()
            name, handler = self._route(request.method, call.path)
            s.calls[name] += 1
            s.log.append((name, call.path))
            s.call_times.setdefault(name, []).append(s.clock())
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ArmError(
                    401,
                    "InvalidAuthenticationToken",
                    "The access token is invalid. Sign in again (az login) or check the"
                    " credential's tenant and secret.",
                )
            if "api-version" not in call.query:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            sub = call.path.split("/")[2] if call.path.lower().startswith("/subscriptions/") else ""
            if sub != s.subscription:
                raise ArmError(
                    404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
                )
            error = s.faults.take(name, None, ArmError)
            if error:
                raise error
            return handler(call)

    def _route(self, method: str, path: str) -> tuple[str, Callable[[Call], Reply]]:
        """The REST operationId of a call and what serves it."""
        s = self.state
        if m := _match(_OPERATION, path):
            op = s.operations.get(m["id"])
            if op is None:
                raise ArmError(404, "NotFound", f"The operation {m['id']} was not found.")
            if m["kind"].lower() == "operations":
                return "AsyncOperation_Get", lambda call: Reply(200, op.resource())
            return "OperationResults_Get", lambda call: resources.operation_result(op)
        if m := _match(_GROUP_RESULT, path):
            op = s.operations.get(m["id"])
            if op is None:
                raise ArmError(404, "NotFound", f"The operation {m['id']} was not found.")
            return "OperationResults_Get", lambda call: resources.operation_result(op)
        if _match(_SUB, path) and method == "GET":
            return "Subscriptions_Get", lambda call: resources.subscription(s, call)
        if m := _match(_GROUPS, path):
            group = m["group"]
            if group is None and method == "GET":
                return "ResourceGroups_List", lambda call: resources.list_groups(s, call)
            table = {
                "PUT": ("CreateOrUpdate", lambda call: resources.put_group(s, call, group)),
                "GET": ("Get", lambda call: resources.get_group(s, call, group)),
                "HEAD": (
                    "CheckExistence",
                    lambda call: Reply(204 if group.lower() in s.groups else 404),
                ),
                "DELETE": (
                    "Delete",
                    lambda call: resources.delete_group(s, call, group, self._empty_group),
                ),
            }
            if group is not None and method in table:
                verb, handler = table[method]
                return f"ResourceGroups_{verb}", handler
        if m := _match(_ROLES, path):
            scope, name = m["scope"], m["name"]
            if name is None and method == "GET":
                return "RoleAssignments_ListForScope", lambda call: resources.list_role_assignments(
                    s, call, scope
                )
            table = {
                "PUT": ("Create", resources.put_role_assignment),
                "GET": ("Get", resources.get_role_assignment),
                "DELETE": ("Delete", resources.delete_role_assignment),
            }
            if name is not None and method in table:
                verb, handler = table[method]
                return f"RoleAssignments_{verb}", lambda call: handler(s, call, scope, name)
        if m := _match(_IN_GROUP, path):
            kind = KINDS.get(m["type"].lower())
            if kind:
                return self._resource_route(kind, method, m)
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The fake serves no {method} {path}: check the path and the resource type.",
        )

    def _resource_route(
        self, kind: Kind, method: str, m: re.Match[str]
    ) -> tuple[str, Callable[[Call], Reply]]:
        s = self.state
        group, name, sub1, subname = m["group"], m["name"], m["sub1"], m["subname"]
        id_ = self._id(group, kind.type, name) if name else ""
        if name is None and method == "GET":
            return f"{kind.prefix}_List", lambda call: self._list(call, kind, group)
        if name and sub1 is None:
            if method == "PUT":
                return f"{kind.prefix}_CreateOrUpdate", lambda call: kind.create(
                    s, call, id_, self._existing(group, id_)
                )
            if method == "GET":
                return f"{kind.prefix}_Get", lambda call: kind.get(s, call, s.get(id_))
            if method == "DELETE":
                return f"{kind.prefix}_Delete", lambda call: self._delete(call, kind, group, id_)
            if method == "PATCH":
                return f"{kind.prefix}_Update", lambda call: self._update(call, kind, s.get(id_))
        if name and sub1 and subname is None and method == "POST":
            action = next((a for n, a in kind.actions.items() if n == sub1.lower()), None)
            if action:
                return f"{kind.prefix}_{sub1[0].upper()}{sub1[1:]}", lambda call: action(
                    s, call, s.get(id_)
                )
        child = next(
            ((k, p) for k, p in kind.children.items() if sub1 and k.lower() == sub1.lower()), None
        )
        if child and subname and method in ("PUT", "GET"):
            key, prefix = child
            if method == "PUT":
                return f"{prefix}_CreateOrUpdate", lambda call: network.put_child(
                    s, call, s.get(id_), key, subname
                )
            return f"{prefix}_Get", lambda call: network.get_child(s.get(id_), key, subname)
        raise ArmError(405, "MethodNotAllowed", f"The fake serves no {method} {m.group(0)}.")

    def _existing(self, group: str, id_: str) -> Resource | None:
        self.state.group(group)
        return self.state.find(id_)

    def _list(self, call: Call, kind: Kind, group: str) -> Reply:
        s = self.state
        s.group(group)
        items = [kind.get(s, call, r).body or {} for r in s.in_group(group, kind.type)]
        return page(call, items, s.page_size)

    def _delete(self, call: Call, kind: Kind, group: str, id_: str) -> Reply:
        found = self._existing(group, id_)
        return kind.delete(self.state, call, found) if found else Reply(204)

    def _update(self, call: Call, kind: Kind, resource: Resource) -> Reply:
        """PATCH: ARM's update of tags (what rayctl changes after creation)."""
        if "tags" in call.body:
            resource.tags = dict(call.body["tags"])
        body = kind.get(self.state, call, resource).body
        if kind.long_running_update:
            return lro(self.state, call, self.state.start_operation(), compute.PROVIDER, 200, body)
        return Reply(200, body)

    def _empty_group(self, group: str) -> None:
        """A resource group's deletion takes everything in it, and its role assignments."""
        s = self.state
        for vm in s.in_group(group, compute.VM):
            compute.remove_vm(s, vm)
        for resource in s.in_group(group):
            network.remove(s, resource)
        prefix = s.group_id(group).lower()
        for key, assignment in list(s.role_assignments.items()):
            if assignment.properties["scope"].lower().startswith(prefix):
                del s.role_assignments[key]
