"""`rayctl dashboard` and `rayctl port-forward`: a port of the head, reachable from this machine
as a URL until the command ends."""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path

import typer
from pydantic import BaseModel

from rayctl.cli.output import (
    CONFIG_ARG,
    JSON_OPT,
    NAME_OPT,
    ClientLost,
    client_signals,
    emit,
    err,
    home,
    load,
    out,
)
from rayctl.ops.forward import Forwarder, HeadPort, dashboard_port, head_port
from rayctl.ops.head import find_head
from rayctl.providers.registry import make_provider
from rayctl.runtime.jobs import HeadJobs
from rayctl.runtime.ray_auth import ClusterAuth

LOCAL_PORT_OPT = typer.Option(
    0, "--port", "-p", min=0, max=65535, help="Local port to listen on (0: any free one)."
)


class Forwarded(BaseModel):
    cluster_name: str
    url: str
    head: str  # the address the head was reached at, as the head sees it
    head_port: int
    tunnel: bool  # carried over SSH; false: the head is reached directly
    held: bool  # the URL works while the command runs (else it returned at once)


def _hold(result: Forwarded, local_port: int, as_json: bool) -> None:
    """Print where the port is reached and keep it open until Ctrl-C, SIGTERM or SIGHUP."""
    emit(result, lambda r: out.print(r.url), as_json=as_json)
    out.file.flush()
    how = "an SSH tunnel" if result.tunnel else "this machine"
    err.print(
        f"Forwarding 127.0.0.1:{local_port} to the head's port "
        f"{result.head_port} through {how}; Ctrl-C ends it."
    )
    with contextlib.suppress(KeyboardInterrupt, ClientLost), client_signals():
        threading.Event().wait()
    err.print("Closed.")


def _print_direct(cluster: str, host: str, port: int, as_json: bool) -> None:
    """A head on this machine is reached at its own address: print it and return."""
    url = f"http://{host}:{port}/"
    result = Forwarded(
        cluster_name=cluster, url=url, head=host, head_port=port, tunnel=False, held=False
    )
    emit(result, lambda r: out.print(r.url), as_json=as_json)


def _head(config: Path, cluster_name: str | None):
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    return loaded, provider, find_head(provider)


def _tunnel(target: HeadPort, local_port: int) -> Forwarder:
    return Forwarder(target.connect, local_port=local_port, on_error=lambda e: err.print(e))


def dashboard(
    config: Path = CONFIG_ARG,
    local_port: int = LOCAL_PORT_OPT,
    cluster_name: str | None = NAME_OPT,
    json_output: bool = JSON_OPT,
) -> None:
    """The head's Ray dashboard as a URL on this machine, with the cluster's Ray token added
    to every request (the URL works in a browser and with curl); open until Ctrl-C."""
    from rayctl.ops.dashboard_proxy import DashboardProxy  # aiohttp: only here

    loaded, provider, head = _head(config, cluster_name)
    head_jobs = HeadJobs.of(loaded.config, head, provider.runner(head), home())
    target = dashboard_port(loaded, provider, head, head_jobs)
    token = ClusterAuth.local(loaded.config, home=home()).require_token()
    host = target.hosts[0]
    if not target.tunnel and token is None and not local_port:
        _print_direct(loaded.name, host, target.port, json_output)
        return
    with contextlib.ExitStack() as stack:
        if target.tunnel:
            upstream = stack.enter_context(_tunnel(target, 0))
            upstream_url = f"http://127.0.0.1:{upstream.port}"
        else:
            upstream_url = f"http://{host}:{target.port}"
        proxy = stack.enter_context(DashboardProxy(upstream_url, token, local_port=local_port))
        _hold(
            Forwarded(
                cluster_name=loaded.name,
                url=proxy.url,
                head=host,
                head_port=target.port,
                tunnel=target.tunnel,
                held=True,
            ),
            proxy.port,
            json_output,
        )


def _port_spec(spec: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,5})(?::(\d{1,5}))?", spec)
    ports = [int(p) for p in match.groups() if p is not None] if match else []
    if not ports or not all(0 < p < 65536 for p in ports):
        raise typer.BadParameter(
            f"{spec!r}: give the head's port, optionally with the local one: 8000 or 8000:18000",
            param_hint="PORT[:LOCAL]",
        )
    return ports[0], ports[1] if len(ports) > 1 else 0


def port_forward(
    config: Path = CONFIG_ARG,
    spec: str = typer.Argument(
        ..., metavar="PORT[:LOCAL]", help="The head's port, and the local one (default: any)."
    ),
    cluster_name: str | None = NAME_OPT,
    json_output: bool = JSON_OPT,
) -> None:
    """A port of the head (Serve's 8000, ...) on 127.0.0.1 of this machine, through an SSH
    tunnel, printed as a URL; open until Ctrl-C. For a cluster on this machine, the head's
    own address (nothing to forward) unless LOCAL is given."""
    port, local_port = _port_spec(spec)
    loaded, provider, head = _head(config, cluster_name)
    target = head_port(loaded, provider, head, port)
    if not target.tunnel and not local_port:
        _print_direct(loaded.name, target.locate(), port, json_output)
        return
    with _tunnel(target, local_port) as forwarder:
        url = f"http://127.0.0.1:{forwarder.port}/"
        _hold(
            Forwarded(
                cluster_name=loaded.name,
                url=url,
                head=head.internal_ip,
                head_port=port,
                tunnel=target.tunnel,
                held=True,
            ),
            forwarder.port,
            json_output,
        )
