"""GceFake: the HTTP server on 127.0.0.1, its routing, and the knobs tests turn."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ..plumbing import FakeServer, Fault, ServedFake
from . import disks, firewalls, iam, instances, operations
from .errors import ApiError, OperationError, not_found, quota_exceeded, rate_limited, stockout
from .routing import Call, Route
from .state import State

ROUTES: list[Route] = [
    *instances.ROUTES,
    *disks.ROUTES,
    *operations.ROUTES,
    *firewalls.ROUTES,
    *iam.ROUTES,
]


class GceFake(ServedFake):
    """A stateful Compute Engine (plus the IAM and Resource Manager calls a provider makes)
    on a random port of `address`: loopback, or an address inside a network namespace the
    test created (a host network's bridge) so processes in other namespaces reach it. Use as
    a context manager; `endpoint` is what the SDK's ClientOptions(api_endpoint=...) takes.

    Instances get private addresses from `subnet` starting at `first_ip`, and a public
    natIP only when their networkInterfaces ask for an accessConfig: then a documentation
    address (203.0.113.x, RFC 5737) that tests must never contact."""

    def __init__(
        self,
        *,
        project: str = "test-project",
        zones: Iterable[str] = ("us-central1-a", "us-central1-b", "us-central1-c"),
        subnet: str = "10.220.1.0/24",
        first_ip: str = "10.220.1.4",
        operation_seconds: float = 0.0,
        boot_seconds: float = 0.0,
        granted_permissions: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        address: str = "127.0.0.1",
    ) -> None:
        self.state = State(
            project=project,
            zones=tuple(zones),
            subnet=subnet,
            first_ip=first_ip,
            operation_seconds=operation_seconds,
            boot_seconds=boot_seconds,
            granted_permissions=(
                None if granted_permissions is None else frozenset(granted_permissions)
            ),
            clock=clock,
        )
        self._routes = Map(
            [Rule(r.path, methods=[r.method], endpoint=r) for r in ROUTES],
            strict_slashes=False,
        )
        self._server = FakeServer(self._app, address)

    @property
    def project(self) -> str:
        return self.state.project

    # -- faults --------------------------------------------------------------------------------

    def stockout(self, zone: str, *, times: int | None = None, with_details: bool = False) -> None:
        """insert and bulkInsert in `zone` fail in their operation with
        ZONE_RESOURCE_POOL_EXHAUSTED (or ..._WITH_DETAILS), as GCE reports a stockout."""
        error = stockout(self.project, zone, with_details=with_details)
        self._add(instances.CREATE_METHODS, zone, error, times)

    def quota_exceeded(
        self, zone: str | None = None, *, metric: str = "CPUS", times: int | None = 1
    ) -> None:
        """insert and bulkInsert fail in their operation with QUOTA_EXCEEDED (403)."""
        region = (zone or self.state.zones[0]).rsplit("-", 1)[0]
        self._add(instances.CREATE_METHODS, zone, quota_exceeded(region, metric), times)

    def rate_limit(self, times: int, *, methods: Iterable[str] = ()) -> None:
        """The next `times` calls (of `methods`, or any) answer 429 rateLimitExceeded."""
        self._add(frozenset(methods), None, rate_limited(), times)

    def fail(
        self, method: str, error: ApiError, *, zone: str | None = None, times: int | None = 1
    ) -> None:
        """Any other HTTP error for a method, e.g. ApiError(403, ..., "quotaExceeded",
        "usageLimits") for the quota GCE checks before it accepts a call."""
        self._add(frozenset({method}), zone, error, times)

    def machine_type_unavailable(self, zone: str, machine_type: str) -> None:
        """insert/bulkInsert of `machine_type` in `zone` answer 400, as for a type the zone
        does not offer."""
        with self.state.lock:
            self.state.unavailable.add((zone, machine_type))

    def slow_operations(self, seconds: float) -> None:
        """Operations started from now on are DONE only after `seconds`."""
        with self.state.lock:
            self.state.operation_seconds = seconds

    def preempt(self, zone: str, name: str) -> None:
        """Reclaim a spot instance, as GCE does (see instances.preempt)."""
        with self.state.lock:
            instances.preempt(self.state, zone, name)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.unavailable.clear()

    def _add(
        self,
        methods: frozenset[str],
        zone: str | None,
        error: ApiError | OperationError,
        times: int | None,
    ) -> None:
        with self.state.lock:
            self.state.faults.add(Fault(methods, zone, error, times))

    # -- serving -------------------------------------------------------------------------------

    def _app(self, environ: dict, start_response: object) -> Iterable[bytes]:
        request = Request(environ)
        try:
            route, path = self._routes.bind_to_environ(environ).match()
            body = self._handle(route, path, request)
            response = Response(json.dumps(body), 200, mimetype="application/json")
        except ApiError as e:
            response = Response(json.dumps(e.body()), e.code, mimetype="application/json")
        except HTTPException as e:  # no such path or method: GCE's 404 shape, not HTML
            error = ApiError(
                e.code or 404, f"{request.method} {request.path}: {e.name}", "notFound"
            )
            response = Response(json.dumps(error.body()), error.code, mimetype="application/json")
        return response(environ, start_response)

    def _handle(self, route: Route, path: dict[str, str], request: Request) -> dict:
        call = Call(
            body=request.get_json(silent=True) or {},
            query={k: v for k, v in request.args.items() if not k.startswith("$")},
        )
        s = self.state
        with s.lock:
            s.advance()
            s.calls[route.name] += 1
            s.log.append((route.name, dict(path)))
            if path["project"] != s.project and not (
                route.name.startswith("iam.") and path["project"] == "-"
            ):
                raise not_found(f"projects/{path['project']}")
            error = s.take_fault(route.name, path.get("zone"), ApiError)
            if error:
                raise error
            return route.handler(s, call, **path)
