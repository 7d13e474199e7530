"""The ssh provider's declaration: its `provider:` section, defaults and checks (light: no
SSH library is imported here)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from rayctl.config.findings import Findings
from rayctl.config.loader import resolve_private_key
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings

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
    # Autostop: the head's monitor stops Ray on the hosts and keeps them, claims and all, for
    # a later `up`; or releases them (its own host last) as `rayctl down` does, which it
    # cannot do from inside the container it would remove (docker mode).
    capabilities: ClassVar[Capabilities] = Capabilities(
        removes_itself=True, stops_nodes=True, removes_itself_in_docker=False
    )
    head_ip: HostAddress | None = Field(
        None, description="Address of the host that runs the head (required)."
    )
    worker_ips: list[HostAddress] = Field(
        [], description="Addresses of the hosts workers may run on."
    )
    external_head_ip: HostAddress | None = Field(
        None, description="The head's address as seen from this machine, if not head_ip."
    )
    coordinator_address: str | None = Field(
        None,
        description="Ray's coordinator server (HOST:PORT) that hands out hosts. Accepted so "
        "Ray's configs validate; `up` refuses it until rayctl allocates hosts from it: list "
        "the hosts as head_ip and worker_ips instead.",
    )

    @property
    def pool_size(self) -> int | None:
        return None if self.coordinator_address else len(self.worker_ips)


def _claims(provider: Mapping[str, Any]) -> bool:
    """Ray's on-prem forms, `type: local` with head_ip or with a coordinator_address, are
    this provider; rayctl's own `type: local` (neither) runs nodes on this machine."""
    return provider.get("type") == "local" and (
        "head_ip" in provider or "coordinator_address" in provider
    )


def _fill(raw: Mapping[str, Any], filled: dict[str, Any]) -> dict[str, Any]:
    """As Ray's on-prem configs: without node types of its own (Ray's examples may write
    `available_node_types: {}` and `head_node_type: {}`), one type for every host, with as
    many workers as the pool has hosts and the legacy top-level min_workers (at most the
    pool) as its min_workers."""
    if raw.get("available_node_types"):
        return filled
    filled["available_node_types"] = {DEFAULT_TYPE: {}}
    filled["head_node_type"] = DEFAULT_TYPE
    node_type = filled["available_node_types"][DEFAULT_TYPE]
    pool = filled["provider"].get("worker_ips")
    size: int | None = None
    if "coordinator_address" in filled["provider"]:
        # The coordinator hands out at most max_workers hosts.
        if isinstance(filled.get("max_workers"), int):
            node_type["max_workers"] = filled["max_workers"]
    elif isinstance(pool, list):
        size = len(pool)
        filled.setdefault("max_workers", size)
        node_type["max_workers"] = size
    legacy = filled.get("min_workers")
    if isinstance(legacy, int) and not isinstance(legacy, bool):  # else the schema reports it
        node_type["min_workers"] = legacy if size is None else min(legacy, size)
        del filled["min_workers"]
    return filled


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """The ssh provider needs a user and its hosts, each listed once. Returns the config
    with the key's path made absolute (the key is optional: without one, the ssh agent's
    keys and ~/.ssh's default keys are tried, as by ssh and Ray)."""
    provider = config.provider
    assert isinstance(provider, SSHProviderConfig)
    problems = found.problems
    if provider.coordinator_address:
        found.unsupported.append(
            (
                ("provider", "coordinator_address"),
                "rayctl does not take hosts from Ray's coordinator server; list them as "
                "provider.head_ip and provider.worker_ips instead",
            )
        )
        if "max_workers" not in config.model_fields_set:
            problems.append(
                ((), "Ray needs max_workers with a coordinator_address: how many hosts to ask for")
            )
    elif provider.head_ip is None:
        problems.append((("provider",), "missing required key 'head_ip'"))
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
    if provider.pool_size is not None and total_min > provider.pool_size:
        problems.append(
            (
                ("provider", "worker_ips"),
                f"the node types' min_workers add up to {total_min}, more than the "
                f"{len(provider.worker_ips)} host(s) in worker_ips",
            )
        )
    if not config.auth.ssh_user:
        problems.append((("auth", "ssh_user"), "the ssh provider needs auth.ssh_user"))
    return resolve_private_key(config, base_dir)


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
