"""Load a cluster YAML: parse, fill defaults, validate, and report every problem as
`FILE:LINE:COL: key.path: message`."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from rayctl.config.defaults import fill_defaults
from rayctl.config.documents import ProblemReport, read_document, suggest
from rayctl.config.schema import (
    PROVIDER_TYPES,
    AWSProviderConfig,
    ClusterConfig,
    SSHProviderConfig,
)
from rayctl.config.yaml_positions import Path as KeyPath
from rayctl.config.yaml_positions import PositionedYaml


@dataclass(frozen=True)
class LoadedConfig:
    config: ClusterConfig
    path: Path

    @property
    def name(self) -> str:
        return self.config.cluster_name


def load_config(path: str | os.PathLike[str], *, cluster_name: str | None = None) -> LoadedConfig:
    """Read and validate a cluster config. Raises ConfigError listing every problem found."""
    file = Path(path)
    shown = str(path)
    doc = read_document(file, shown, empty="the config is empty; see cluster-configs/local.yaml")
    raw = dict(doc.data)
    if cluster_name is not None:
        raw["cluster_name"] = cluster_name
    base_dir = file.resolve().parent
    config = _validate(raw, doc, shown, base_dir, name_from_flag=cluster_name is not None)
    return LoadedConfig(config, file.resolve())


# Keys the provider's defaults would fill: not worth reporting while the provider is wrong.
_FILLED_BY_PROVIDER = {("available_node_types",), ("head_node_type",)}


def _validate(
    raw: dict[str, Any], doc: PositionedYaml, shown: str, base_dir: Path, *, name_from_flag: bool
) -> ClusterConfig:
    report = ProblemReport(
        doc,
        shown,
        ClusterConfig,
        flag_keys={"cluster_name": "--cluster-name"} if name_from_flag else {},
    )
    try:
        config = ClusterConfig.model_validate(fill_defaults(raw))
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        provider = raw.get("provider")
        if not (isinstance(provider, dict) and provider.get("type") in PROVIDER_TYPES):
            errors = [
                e
                for e in errors
                if not (e["type"] == "missing" and e["loc"] in _FILLED_BY_PROVIDER)
            ]
        raise report.validation_error(errors, raw) from None
    config, semantic = _check(config, base_dir)
    if semantic:
        raise report.error(semantic)
    return config


_RAY_STOP = re.compile(r"(^|[;&|\s])ray\s+stop\b")


def _check(
    config: ClusterConfig, base_dir: Path
) -> tuple[ClusterConfig, list[tuple[KeyPath, str]]]:
    """Rules that span keys. Returns the config with file mount sources made absolute."""
    problems: list[tuple[KeyPath, str]] = []
    types = config.available_node_types
    if not types:
        problems.append((("available_node_types",), "define at least one node type"))
    if config.head_node_type not in types:
        hint = suggest(config.head_node_type, list(types))
        problems.append(
            (("head_node_type",), f"'{config.head_node_type}' is not in available_node_types{hint}")
        )
    for name, node_type in types.items():
        if node_type.max_workers is not None and node_type.min_workers > node_type.max_workers:
            problems.append(
                (
                    ("available_node_types", name, "min_workers"),
                    f"min_workers ({node_type.min_workers}) is greater than "
                    f"max_workers ({node_type.max_workers})",
                )
            )
        if node_type.docker is not None and node_type.docker.container_name:
            problems.append(
                (("available_node_types", name, "docker"), "docker mode is not supported yet")
            )
    for name in config.rayctl.node_types:
        if name not in types:
            problems.append(
                (
                    ("rayctl", "node_types", name),
                    f"'{name}' is not in available_node_types{suggest(name, list(types))}",
                )
            )
    total_min = sum(t.min_workers for t in types.values())
    if total_min > config.max_workers:
        problems.append(
            (
                ("max_workers",),
                f"the node types' min_workers add up to {total_min}, "
                f"more than max_workers ({config.max_workers})",
            )
        )
    if config.docker.container_name:
        problems.append(
            (("docker", "container_name"), "docker mode is not supported yet; remove docker:")
        )
    mounts: dict[str, str] = {}
    for remote, local in config.file_mounts.items():
        source = (base_dir / os.path.expanduser(local)).resolve()
        if not source.exists():
            problems.append(
                (("file_mounts", remote), f"local path '{local}' does not exist ({source})")
            )
        if config.provider.type == "local" and not remote.startswith("~"):
            problems.append(
                (
                    ("file_mounts", remote),
                    "local nodes share this machine: use a '~/...' target, which maps into "
                    "the node's own home directory",
                )
            )
        mounts[remote] = str(source)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for index, command in enumerate(getattr(config, key)):
            if config.provider.type == "local" and _RAY_STOP.search(command):
                problems.append(
                    (
                        (key, index),
                        "'ray stop' would stop every Ray process on this machine; "
                        "rayctl stops local nodes by PID, remove it",
                    )
                )
    config = config.model_copy(update={"file_mounts": mounts})
    runtime = config.rayctl.runtime
    if runtime.wheelhouse:
        wheelhouse = (base_dir / os.path.expanduser(runtime.wheelhouse)).resolve()
        if not wheelhouse.is_dir():
            problems.append(
                (
                    ("rayctl", "runtime", "wheelhouse"),
                    f"'{runtime.wheelhouse}' is not a directory ({wheelhouse})",
                )
            )
        runtime = runtime.model_copy(update={"wheelhouse": str(wheelhouse)})
        config = config.model_copy(
            update={"rayctl": config.rayctl.model_copy(update={"runtime": runtime})}
        )
    if isinstance(config.provider, SSHProviderConfig):
        config = _check_ssh(config, config.provider, base_dir, problems)
    if isinstance(config.provider, AWSProviderConfig):
        config = _check_aws(config, config.provider, base_dir, problems)
    return config, problems


def _private_key(
    config: ClusterConfig, base_dir: Path, problems: list[tuple[KeyPath, str]]
) -> ClusterConfig:
    """The config with auth.ssh_private_key made absolute; a problem if the file is missing."""
    auth = config.auth
    assert auth.ssh_private_key
    key = (base_dir / os.path.expanduser(auth.ssh_private_key)).resolve()
    if not key.is_file():
        problems.append(
            (("auth", "ssh_private_key"), f"key file '{auth.ssh_private_key}' not found ({key})")
        )
    return config.model_copy(update={"auth": auth.model_copy(update={"ssh_private_key": str(key)})})


def _check_ssh(
    config: ClusterConfig,
    provider: SSHProviderConfig,
    base_dir: Path,
    problems: list[tuple[KeyPath, str]],
) -> ClusterConfig:
    """The ssh provider needs a user and a key; hosts are listed once. Returns the config
    with the key's path made absolute."""
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
    return _private_key(config, base_dir, problems)


# Ray's GCS, dashboard and client server: no authentication, never open to the internet.
_RAY_PORTS = (6379, 8265, 10001)
# run_instances arguments rayctl decides itself, or cannot fail over with yet.
_AWS_OWN_KEYS = {
    "MinCount": "rayctl sets MinCount and MaxCount from the number of nodes it launches",
    "MaxCount": "rayctl sets MinCount and MaxCount from the number of nodes it launches",
    "SubnetId": "use SubnetIds (a list): rayctl tries them in order when a zone has no capacity",
    "NetworkInterfaces": "NetworkInterfaces is not supported yet; use SubnetIds and "
    "SecurityGroupIds",
}


def _check_aws(
    config: ClusterConfig,
    provider: AWSProviderConfig,
    base_dir: Path,
    problems: list[tuple[KeyPath, str]],
) -> ClusterConfig:
    """Nothing is looked up in AWS here (validation is offline): the shape of node_config,
    addresses, zones and keys. Returns the config with the key's path made absolute."""
    for index, zone in enumerate(provider.zones):
        if not zone.startswith(provider.region):
            problems.append(
                (
                    ("provider", "availability_zone"),
                    f"zone '{zone}' (entry {index + 1}) is not in region {provider.region}",
                )
            )
    if provider.ssh_source_cidrs is None and not provider.use_internal_ips:
        problems.append(
            (
                ("provider",),
                "nodes are reached at their public addresses, so say where SSH may come "
                "from: ssh_source_cidrs: [203.0.113.7/32] (your address), or [0.0.0.0/0] "
                "for anywhere; or set use_internal_ips: true to stay inside the VPC",
            )
        )
    for index, cidr in enumerate(provider.ssh_source_cidrs or []):
        try:
            ipaddress.ip_network(cidr)
        except ValueError as exc:
            problems.append((("provider", "ssh_source_cidrs", index), f"not a CIDR block: {exc}"))
    group = provider.security_group
    for index, rule in enumerate(group.IpPermissions if group else []):
        where: KeyPath = ("provider", "security_group", "IpPermissions", index)
        exposed = _ray_ports_to_internet(rule)
        if exposed:
            problems.append(
                (
                    where,
                    f"opens Ray's port(s) {exposed} to the internet; Ray does not "
                    "authenticate clients: reach them through SSH instead",
                )
            )
    key_names = []
    for name, node_type in config.available_node_types.items():
        node_config = node_type.node_config
        path: KeyPath = ("available_node_types", name, "node_config")
        if "InstanceType" not in node_config and "LaunchTemplate" not in node_config:
            problems.append((path, "needs an InstanceType (e.g. m5.large)"))
        for key, why in _AWS_OWN_KEYS.items():
            if key in node_config:
                problems.append(((*path, key), why))
        for key in ("SubnetIds", "SecurityGroupIds"):
            value = node_config.get(key)
            if value is not None and not (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            ):
                problems.append(((*path, key), "must be a non-empty list of ids"))
        if node_config.get("ImageId") == "latest_dlami":
            problems.append(
                (
                    (*path, "ImageId"),
                    "'latest_dlami' is Ray's own lookup; leave ImageId out for Ubuntu's "
                    "current LTS, or give an AMI id",
                )
            )
        if "KeyName" in node_config:
            key_names.append((*path, "KeyName"))
    auth = config.auth
    if not auth.ssh_user:
        problems.append((("auth", "ssh_user"), "the aws provider needs auth.ssh_user"))
    if not auth.ssh_private_key:
        # rayctl creates a key pair for the cluster; a KeyName needs its private key.
        problems.extend(
            (where, "a KeyName needs auth.ssh_private_key (that key pair's private key)")
            for where in key_names
        )
        return config
    return _private_key(config, base_dir, problems)


def _ray_ports_to_internet(rule: Any) -> str:
    """The Ray ports an inbound rule opens to every address, as text ('' if none)."""
    if not isinstance(rule, dict):
        return ""
    anywhere = any(
        isinstance(r, dict) and r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", [])
    ) or any(
        isinstance(r, dict) and r.get("CidrIpv6") == "::/0" for r in rule.get("Ipv6Ranges", [])
    )
    if not anywhere:
        return ""
    protocol = str(rule.get("IpProtocol", "")).lower()
    if protocol in ("-1", "all"):
        return ", ".join(map(str, _RAY_PORTS))
    if protocol not in ("tcp", "6"):
        return ""
    low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
    if not (isinstance(low, int) and isinstance(high, int)):
        return ""
    return ", ".join(str(p) for p in _RAY_PORTS if low <= p <= high)
