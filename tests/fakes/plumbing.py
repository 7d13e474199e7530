"""What every cloud REST fake here shares: the HTTP server thread, injected faults with
their countdown, and a pool of private addresses. Each fake (gce/, arm/) keeps its own
routes, records and error shapes."""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from werkzeug.serving import WSGIRequestHandler, make_server

E = TypeVar("E")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass  # tests count calls through the fake's `calls`; a line per call is noise


class FakeServer:
    """A threaded WSGI server on a random port of `address` (loopback, or an address inside
    a network namespace the test created), started and stopped with the fake."""

    def __init__(self, app: Callable[[dict, object], Iterable[bytes]], address: str) -> None:
        self.address = address
        self._server = make_server(address, 0, app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self._server.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ServedFake:
    """What tests do with every fake: serve it (`with`), point clients at its endpoint, and
    count the calls it served. Subclasses set `_server` and `state` (with `lock`, `calls`)."""

    _server: FakeServer
    state: Any

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def calls(self) -> Counter[str]:
        """Calls served per API operation id (compute.instances.bulkInsert,
        VirtualMachines_CreateOrUpdate, ...)."""
        with self.state.lock:
            return Counter(self.state.calls)


@dataclass
class Fault:
    methods: frozenset[str]  # the API's operation ids; empty: every call
    zone: str | None  # None: any zone
    error: object  # whatever the fake raises or puts into an operation
    times: int | None  # None: until cleared

    def matches(self, method: str, zone: str | None) -> bool:
        return (not self.methods or method in self.methods) and self.zone in (None, zone)


class Faults:
    """Injected faults, first match wins; a fault set for N times is gone after N calls."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, zone: str | None, kind: type[E]) -> E | None:
        for fault in self._faults:
            if fault.matches(method, zone) and isinstance(fault.error, kind):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault.error
        return None


@dataclass
class AddressPool:
    """Addresses handed out lowest first from `first`, as a subnet's DHCP does; freed on delete."""

    subnet: ipaddress.IPv4Network
    first: ipaddress.IPv4Address
    used: set[ipaddress.IPv4Address] = field(default_factory=set)

    @classmethod
    def of(cls, subnet: str, first: str) -> AddressPool:
        return cls(ipaddress.IPv4Network(subnet), ipaddress.IPv4Address(first))

    def take(self) -> str:
        for ip in self.subnet.hosts():
            if ip >= self.first and ip not in self.used:
                self.used.add(ip)
                return str(ip)
        raise RuntimeError(f"the fake's subnet {self.subnet} is full: give it a larger one")

    def give_back(self, ip: str) -> None:
        self.used.discard(ipaddress.IPv4Address(ip))


# TEST-NET-3 (RFC 5737): documentation addresses that route nowhere. Fakes hand these out as
# public addresses; a test must never contact one.
def documentation_addresses() -> AddressPool:
    return AddressPool.of("203.0.113.0/24", "203.0.113.1")
