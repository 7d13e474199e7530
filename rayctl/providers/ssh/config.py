"""The ssh provider's declaration: its `provider:` section, defaults and checks (light: no
SSH library is imported here)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from rayctl.config.loader import resolve_private_key
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import ClusterConfig, ProviderSettings
from rayctl.config.yaml_positions import Path as KeyPath

# As Ray's on-prem provider: one type for the head and the workers. Hosts' resources are left
# to Ray to detect unless the config gives them.
DEFAULT_TYPE = "local.cluster.node"

# RFC 1123 host names: labels of letters, digits and inner '-', joined by '.'.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
    re.IGNORECASE,
)


def _host_address(value: str) -> str:
    """An IP address or a host name, nothing else: addresses reach SSH, `ray start` and
    scripts. (An IPv6 scope id, `%zone`, may hold any text: refused.)"""
    if "%" not in value:
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
    if _HOST_NAME.fullmatch(value):
        return value
    raise ValueError(f"{value!r} is not an IP address or a host name")


HostAddress = Annotated[str, AfterValidator(_host_address)]


class SSHProviderConfig(ProviderSettings):
    """A fleet of hosts reached over SSH: the head on head_ip, workers taken from worker_ips
    as demand needs them and given back when idle. Ray's `type: local` with head_ip is read
    as this."""

    type: Literal["ssh"]
    head_ip: HostAddress = Field(description="Address of the host that runs the head.")
    worker_ips: list[HostAddress] = Field(
        [], description="Addresses of the hosts workers may run on."
    )
    external_head_ip: HostAddress | None = Field(
        None, description="The head's address as seen from this machine, if not head_ip."
    )

    @property
    def pool_size(self) -> int | None:
        return len(self.worker_ips)


def _claims(provider: Mapping[str, Any]) -> bool:
    """Ray's on-prem form, `type: local` with head_ip, is this provider; rayctl's own
    `type: local` (no head_ip) runs nodes on this machine."""
    return provider.get("type") == "local" and "head_ip" in provider


def _fill(raw: Mapping[str, Any], filled: dict[str, Any]) -> dict[str, Any]:
    """By default as many workers as the pool has hosts."""
    pool = filled["provider"].get("worker_ips")
    if isinstance(pool, list):
        filled.setdefault("max_workers", len(pool))
        if not isinstance(raw.get("available_node_types"), dict):
            filled["available_node_types"][DEFAULT_TYPE]["max_workers"] = len(pool)
    return filled


def check(
    config: ClusterConfig, base_dir: Path, problems: list[tuple[KeyPath, str]]
) -> ClusterConfig:
    """The ssh provider needs a user and a key; hosts are listed once. Returns the config
    with the key's path made absolute."""
    provider = config.provider
    assert isinstance(provider, SSHProviderConfig)
    seen: set[str] = set()
    for index, ip in enumerate(provider.worker_ips):
        if ip == provider.head_ip:
            problems.append(
                (("provider", "worker_ips", index), f"{ip} is the head_ip; list it once")
            )
        elif ip in seen:
            problems.append((("provider", "worker_ips", index), f"{ip} is listed twice"))
        seen.add(ip)
    total_min = sum(t.min_workers for t in config.worker_types().values())
    if total_min > len(provider.worker_ips):
        problems.append(
            (
                ("provider", "worker_ips"),
                f"the node types' min_workers add up to {total_min}, more than the "
                f"{len(provider.worker_ips)} host(s) in worker_ips",
            )
        )
    auth = config.auth
    if not auth.ssh_user:
        problems.append((("auth", "ssh_user"), "the ssh provider needs auth.ssh_user"))
    if not auth.ssh_private_key:
        problems.append(
            (("auth", "ssh_private_key"), "the ssh provider needs auth.ssh_private_key")
        )
        return config
    return resolve_private_key(config, base_dir, problems)


SPEC = ProviderSpec(
    kind="ssh",
    model=SSHProviderConfig,
    factory="rayctl.providers.ssh.instances:SSHProvider",
    defaults={"head_node_type": DEFAULT_TYPE, "available_node_types": {DEFAULT_TYPE: {}}},
    fill=_fill,
    claims=_claims,
    check=check,
    extra="ssh",
)
