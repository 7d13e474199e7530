"""The aws provider's declaration: its `provider:` section, defaults and checks (light: boto3
is imported only by the provider itself, rayctl.providers.aws.instances)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from rayctl.config.exposure import check_ssh_sources, ray_exposure
from rayctl.config.findings import Findings
from rayctl.config.loader import resolve_private_key
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings, StrictModel
from rayctl.config.yaml_positions import Path as KeyPath


class AWSSecurityGroupConfig(StrictModel):
    """Ray's `provider.security_group`: the cluster's group name and extra inbound rules."""

    GroupName: str | None = Field(
        None, min_length=1, description="Name of the cluster's group (default rayctl-<cluster>)."
    )
    IpPermissions: list[dict[str, Any]] = Field(
        [],
        description="Extra inbound rules, in EC2's IpPermissions form. Rules that open Ray's "
        "ports to the whole internet are refused.",
    )


class AWSProviderConfig(ProviderSettings):
    """EC2 instances in one region, launched with boto3's usual credentials (environment,
    profile, SSO, or the head's instance profile)."""

    type: Literal["aws"]
    # The head removes its cluster (autostop with `down`): AWSProvider.remove_from_head;
    # or stops its instances (without): AWSProvider.stop_nodes.
    capabilities: ClassVar[Capabilities] = Capabilities(removes_itself=True, stops_nodes=True)
    region: str = Field(min_length=1, description="The AWS region, e.g. us-west-2.")
    availability_zone: str | None = Field(
        None,
        description="Comma-separated zones to launch in, in order of preference "
        "(default: every zone of the region's default VPC).",
    )
    cache_stopped_nodes: bool = Field(
        True,
        description="Stop idle workers instead of terminating them and restart them when a "
        "worker of the same type and node_config is needed. `rayctl down` terminates "
        "stopped workers too.",
    )
    use_internal_ips: bool = Field(
        False, description="Reach nodes at their private addresses (from inside the VPC)."
    )
    security_group: AWSSecurityGroupConfig | None = None
    ssh_source_cidrs: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Where SSH (TCP 22) to the nodes may come from, e.g. [203.0.113.7/32] "
        "(your address). Default: anywhere (0.0.0.0/0, key-only logins), as in Ray; with "
        "use_internal_ips: true, the VPC only. Nothing else is opened: Ray's ports are open "
        "only within the cluster's security group.",
    )
    cloudwatch: dict[str, Any] | None = Field(
        None,
        description="Ray's CloudWatch agent, dashboard and alarm settings. Accepted so Ray's "
        "configs validate; `up` refuses them until rayctl sets CloudWatch up.",
    )

    @property
    def zones(self) -> list[str]:
        return [z.strip() for z in (self.availability_zone or "").split(",") if z.strip()]


# run_instances arguments rayctl decides itself, or cannot fail over with yet.
_AWS_OWN_KEYS = {
    "MinCount": "rayctl sets MinCount and MaxCount from the number of nodes it launches",
    "MaxCount": "rayctl sets MinCount and MaxCount from the number of nodes it launches",
    "SubnetId": "use SubnetIds (a list): rayctl tries them in order when a zone has no capacity",
}
# With NetworkInterfaces, the interfaces name the subnets and security groups (as in Ray).
_NOT_WITH_INTERFACES = ("SubnetIds", "SecurityGroupIds")
# Ray's name for AWS's newest Deep Learning AMI, looked up when the cluster is brought up.
LATEST_DLAMI = "latest_dlami"


def wants_dlami(node_config: Any) -> bool:
    """Ray compares ImageId to latest_dlami ignoring case."""
    image = node_config.get("ImageId")
    return isinstance(image, str) and image.lower() == LATEST_DLAMI


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """Nothing is looked up in AWS here (validation is offline): the shape of node_config,
    addresses, zones and keys. Returns the config with the key's path made absolute."""
    provider = config.provider
    assert isinstance(provider, AWSProviderConfig)
    problems = found.problems
    for index, zone in enumerate(provider.zones):
        if not zone.startswith(provider.region):
            problems.append(
                (
                    ("provider", "availability_zone"),
                    f"zone '{zone}' (entry {index + 1}) is not in region {provider.region}",
                )
            )
    # With internal IPs, SSH is open to the VPC by default.
    check_ssh_sources(
        provider.ssh_source_cidrs, found, open_by_default=not provider.use_internal_ips
    )
    if provider.cloudwatch is not None:
        found.unsupported.append(
            (
                ("provider", "cloudwatch"),
                "rayctl does not set up the CloudWatch agent, dashboards or alarms; remove "
                "provider.cloudwatch and install the agent in setup_commands instead",
            )
        )
    group = provider.security_group
    for index, rule in enumerate(group.IpPermissions if group else []):
        problem = _rule_problem(rule)
        if problem:
            problems.append((("provider", "security_group", "IpPermissions", index), problem))
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
            if value is not None and not _ids(value):
                problems.append(((*path, key), "must be a non-empty list of ids"))
        if "NetworkInterfaces" in node_config:
            _check_interfaces(node_config, path, problems)
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
    return resolve_private_key(config, base_dir)


def _ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _check_interfaces(
    node_config: dict[str, Any], path: KeyPath, problems: list[tuple[KeyPath, str]]
) -> None:
    """Ray's rules: the interfaces name every subnet and security group, and only they do."""
    where: KeyPath = (*path, "NetworkInterfaces")
    interfaces = node_config["NetworkInterfaces"]
    if not (isinstance(interfaces, list) and interfaces):
        problems.append((where, "must be a non-empty list of network interfaces"))
        return
    for key in _NOT_WITH_INTERFACES:
        if key in node_config:
            problems.append(
                (
                    (*path, key),
                    "with NetworkInterfaces, give subnets and security groups in "
                    "each interface (SubnetId, Groups) instead",
                )
            )
    for index, interface in enumerate(interfaces):
        if not isinstance(interface, dict):
            problems.append(((*where, index), "must be a mapping (SubnetId, Groups, ...)"))
            continue
        if not isinstance(interface.get("SubnetId"), str) or not interface["SubnetId"]:
            problems.append(((*where, index), "needs a SubnetId"))
        if not _ids(interface.get("Groups")):
            problems.append(
                ((*where, index), "needs Groups: a non-empty list of security group ids")
            )


def _rule_problem(rule: dict[str, Any]) -> str | None:
    """Why an inbound rule is refused: it opens one of Ray's ports to a public address, or it
    is too malformed to tell."""
    try:
        return ray_exposure(_rule_networks(rule), *_rule_ports(rule))
    except ValueError as exc:
        return str(exc)


def _rule_networks(rule: dict[str, Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The rule's source CIDRs, in whatever spelling (host bits set, `0::/0`)."""
    networks = []
    for ranges, key in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")):
        entries = rule.get(ranges, [])
        if not isinstance(entries, list):
            raise ValueError(f"{ranges} must be a list of {{{key}: ...}}")
        for entry in entries:
            cidr = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(cidr, str):
                raise ValueError(f"each entry of {ranges} needs {key}: a CIDR block")
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{ranges}: not a CIDR block: {exc}") from None
    return networks


def _rule_ports(rule: dict[str, Any]) -> tuple[int, int]:
    """The TCP ports the rule opens (Ray speaks only TCP); (1, 0), none, for other protocols."""
    protocol = str(rule.get("IpProtocol", "")).lower()
    if protocol in ("-1", "all"):
        return 0, 65535
    if protocol not in ("tcp", "6"):
        return 1, 0
    low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
    for key, value in (("FromPort", low), ("ToPort", high)):
        if type(value) is not int or not -1 <= value <= 65535:
            raise ValueError(f"{key} must be a port number (got {value!r})")
    # -1 means every port, as EC2 reads it.
    return (0, 65535) if -1 in (low, high) else (low, high)


SPEC = ProviderSpec(
    kind="aws",
    model=AWSProviderConfig,
    factory="rayctl.providers.aws.instances:AWSProvider",
    # As Ray's AWS defaults. No ImageId: rayctl looks up Canonical's current Ubuntu LTS for
    # the instance type's architecture when the cluster is brought up. Resources are left
    # to Ray to detect; give them to plan before any node is up.
    defaults={
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"node_config": {"InstanceType": "m5.large"}},
            "ray.worker.default": {"node_config": {"InstanceType": "m5.large"}},
        },
        "auth": {"ssh_user": "ubuntu"},
    },
    check=check,
    extra="aws",
)
