"""Reaching a port of the head from this machine (`rayctl dashboard`, `rayctl port-forward`):
a listener on 127.0.0.1 whose connections are carried to the head, through the SSH connection
rayctl already has to it (as `ssh -L` does), or straight to the head's address for providers
whose nodes are this machine."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rayctl.config.loader import LoadedConfig
from rayctl.errors import RayctlError
from rayctl.providers.base import Node, NodeProvider
from rayctl.runtime.jobs import HeadJobs
from rayctl.runtime.runner import TunnelRefused

CHUNK = 64 * 1024


class Stream(Protocol):
    """One end of a carried connection: a socket, or an SSH channel."""

    def recv(self, size: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...
    def fileno(self) -> int: ...
    def shutdown(self, how: int) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class HeadPort:
    """A port on the head and how to open a connection to it from here."""

    hosts: tuple[str, ...]  # the head's addresses to try, in order, as the head sees them
    port: int
    tunnel: bool  # carried over SSH (else reached directly: the head is on this machine)
    _open: Callable[[str, int], Stream]

    def connect(self) -> Stream:
        """A connection to the port at the first of `hosts` that accepts one."""
        for host in self.hosts[:-1]:
            with contextlib.suppress(TunnelRefused):
                return self._open(host, self.port)
        return self._open(self.hosts[-1], self.port)

    def locate(self) -> str:
        """The first of `hosts` where the port accepts connections now (TunnelRefused:
        none)."""
        for host in self.hosts:
            with contextlib.suppress(TunnelRefused):
                self._open(host, self.port).close()
                return host
        raise TunnelRefused(
            f"nothing accepts connections on port {self.port} of the head "
            f"(tried {', '.join(self.hosts)})"
        )


def head_port(
    loaded: LoadedConfig, provider: NodeProvider, head: Node, port: int, host: str | None = None
) -> HeadPort:
    """The head's `port` at `host`; without one, on its loopback address (where services such
    as Serve listen by default) and its cluster address. A wildcard host is the head's own."""
    if host in ("0.0.0.0", "::"):
        host = head.internal_ip
    if loaded.config.provider.capabilities.shares_filesystem:  # nodes are this machine
        hosts = (host,) if host else (head.internal_ip, "127.0.0.1")
        return HeadPort(hosts, port, False, _direct)
    from rayctl.runtime.ssh_runner import SSHRunner  # paramiko: only for SSH providers

    runner = provider.runner(head)
    if not isinstance(runner, SSHRunner):
        raise RayctlError(f"the head of '{loaded.name}' is not reached over SSH: no tunnel")
    hosts = (host,) if host else ("127.0.0.1", head.internal_ip)
    return HeadPort(hosts, port, True, runner.open_tunnel)


def dashboard_port(
    loaded: LoadedConfig, provider: NodeProvider, head: Node, head_jobs: HeadJobs
) -> HeadPort:
    """The head's dashboard, at the address it registered in Ray's GCS."""
    host, port = head_jobs.dashboard_address()
    return head_port(loaded, provider, head, port, host)


def _direct(host: str, port: int) -> Stream:
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        raise TunnelRefused(f"could not connect to {host}:{port}: {exc.strerror}") from None
    sock.settimeout(None)  # the wait was for connecting only
    return sock


class Forwarder:
    """Listens on 127.0.0.1:`local_port` (0: any free port); each connection accepted is
    carried to a new stream from `connect`, in both directions, until either end closes.
    `on_error` hears why a connection could not be carried (once per connection)."""

    def __init__(
        self, connect: Callable[[], Stream], *, local_port: int = 0, on_error: Callable[[str], None]
    ) -> None:
        try:
            self._listener = socket.create_server(("127.0.0.1", local_port))
        except OSError as exc:
            raise RayctlError(
                f"cannot listen on 127.0.0.1:{local_port}: {exc.strerror}; choose another "
                "local port, or 0 for any free one"
            ) from None
        self.port: int = self._listener.getsockname()[1]
        self._connect = connect
        self._on_error = on_error
        self._lock = threading.Lock()
        self._streams: set[Stream] = set()
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Forwarder:
        self._accepting.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and close every carried connection; returns once the port is free."""
        with self._lock:
            self._closed = True
            streams = list(self._streams)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for stream in streams:
            with contextlib.suppress(OSError, EOFError):
                # shutdown first: a close alone leaves the connection open while the pumping
                # thread's select still holds it
                stream.shutdown(socket.SHUT_RDWR)
                stream.close()
        if self._accepting.is_alive():
            self._accepting.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._carry, args=(client,), daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        try:
            target = self._connect()
        except RayctlError as exc:
            self._on_error(str(exc))
            client.close()
            return
        pair: tuple[Stream, Stream] = (client, target)
        with self._lock:
            if self._closed:
                client.close()
                target.close()
                return
            self._streams.update(pair)
        try:
            _pump(client, target)
        finally:
            with self._lock:
                self._streams.difference_update(pair)
            for stream in pair:
                with contextlib.suppress(OSError, EOFError):
                    stream.close()


def _pump(a: Stream, b: Stream) -> None:
    """Copy bytes both ways until both sides have ended (one side's end is passed on as a
    half-close, so a request sent before it still gets its answer), or a stream fails or is
    closed under us."""
    other = {a.fileno(): (a, b), b.fileno(): (b, a)}
    while other:
        try:
            ready, _, _ = select.select(list(other), [], [])
        except (OSError, ValueError):  # a stream was closed by Forwarder.close
            return
        for fd in ready:
            source, sink = other[fd]
            try:
                data = source.recv(CHUNK)
                if data:
                    sink.sendall(data)
                    continue
                del other[fd]
                sink.shutdown(socket.SHUT_WR)
            except (OSError, EOFError):
                return
