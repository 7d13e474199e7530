"""What cloud providers' configs may let in: SSH from ssh_source_cidrs, and extra inbound
rules (AWS security group rules, GCP firewall rules), none of which may expose Ray's ports to
the internet.

Ray's ports may never be opened to public addresses. Ray 2.60 listens on fixed defaults for
the GCS (6379), dashboard (8265), client server (10001), dashboard agent (52365) and workers
(10002-19999), but binds the node manager, object manager, metrics export, dashboard agent
gRPC and runtime env agent to port 0 (anywhere in the kernel's ephemeral range) unless told.
rayctl pins those on cloud nodes (PINNED_RAY_PORTS, given to every `ray start` there and in
$RAYCTL_RAY_START_ARGS) rather than treating every high port as Ray's: the check stays exact
and a rule for, say, Serve's 8000 or 443 remains possible.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from rayctl.config.findings import Findings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PINNED_RAY_PORTS = {
    "--node-manager-port": 6380,
    "--object-manager-port": 6381,
    "--metrics-export-port": 6382,
    "--dashboard-agent-grpc-port": 6383,
    "--runtime-env-agent-port": 6384,
}
RAY_PORT_RANGES = ((6379, 6384), (8265, 8265), (10001, 19999), (52365, 52365))
# Addresses the internet cannot reach: a rule open to anything else exposes Ray.
_NON_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


def is_public(network: Network) -> bool:
    """Whether the block holds any address outside the private and local ranges."""
    return not any(
        network.version == block.version and network.subnet_of(block) for block in _NON_PUBLIC
    )


def ray_exposure(networks: Sequence[Network], low: int, high: int) -> str | None:
    """Why letting `networks` reach TCP ports `low`..`high` exposes Ray, or None."""
    public = [n for n in networks if is_public(n)]
    opened = [(max(a, low), min(b, high)) for a, b in RAY_PORT_RANGES if a <= high and low <= b]
    if not (public and opened):
        return None
    ports = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in opened)
    return (
        f"opens Ray's port(s) {ports} to public addresses ({public[0]}); Ray does not "
        "authenticate clients: reach them through SSH, or allow only private ranges"
    )


def check_ssh_sources(
    cidrs: Sequence[str] | None, found: Findings, *, open_by_default: bool = True
) -> None:
    """provider.ssh_source_cidrs: each a CIDR block; left out (and SSH then open to anywhere,
    as in Ray), a warning that says how to narrow it."""
    if cidrs is None and open_by_default:
        found.warnings.append(
            (
                ("provider",),
                "SSH (TCP 22) to the nodes is open to anywhere (0.0.0.0/0), as in Ray; "
                "narrow it with provider.ssh_source_cidrs: [YOUR.IP/32]",
            )
        )
    for index, cidr in enumerate(cidrs or []):
        try:
            ipaddress.ip_network(cidr)
        except ValueError as exc:
            found.problems.append(
                (("provider", "ssh_source_cidrs", index), f"not a CIDR block: {exc}")
            )
