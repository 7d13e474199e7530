"""The azure provider's declaration: its `provider:` section, defaults and checks (light: the
SDKs, azure-mgmt-* and azure-identity, are imported only by the provider itself).

node_config is Ray's: `azure_arm_parameters` (the parameters Ray gives its VM template: vmSize,
imagePublisher/Offer/Sku/Version or imageId, osDiskSize, priority Spot with evictionPolicy and
billingProfile, enableAcceleratedNetworking, a per-type availability_zone) and `tags`; other
node_config keys pass through as in Ray."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import Field

from rayctl.config.documents import suggest
from rayctl.config.exposure import check_ssh_sources
from rayctl.config.findings import Findings
from rayctl.config.loader import resolve_private_key
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import Capabilities, ClusterConfig, ProviderSettings, StrictModel
from rayctl.config.yaml_positions import Path as KeyPath

# Ray's zone words: "auto" lets Azure place the VM, "none" asks for no zone.
ZONE_WORDS = ("auto", "none")


def zone_list(value: str | None) -> list[str]:
    """Zones of an availability_zone setting ("1,2,3"), in order; [] for none/auto/unset."""
    if value is None or value.strip().lower() in ZONE_WORDS:
        return []
    return list(dict.fromkeys(z.strip() for z in value.split(",") if z.strip()))


def _zone_problem(value: str | None) -> str | None:
    if value is None or value.strip().lower() in ZONE_WORDS:
        return None
    if not zone_list(value) or not all(z.isdigit() for z in zone_list(value)):
        return f"'{value}' is not a zone list: give zone numbers ('1,2,3'), 'auto' or 'none'"
    return None


class AzureProviderConfig(ProviderSettings):
    """Azure VMs in one location and resource group, with azure-identity's
    DefaultAzureCredential (az login, AZURE_CLIENT_ID/SECRET/TENANT_ID, or the head's managed
    identity)."""

    type: Literal["azure"]
    # The head removes its cluster (autostop with `down`: AzureProvider.remove_from_head) or
    # stops its nodes for a later `up` (without: AzureProvider.stop_nodes).
    capabilities: ClassVar[Capabilities] = Capabilities(removes_itself=True, stops_nodes=True)
    location: str = Field(min_length=1, description="The Azure region, e.g. westus2.")
    resource_group: str = Field(
        min_length=1,
        max_length=90,
        pattern=r"^[-\w.()]*[-\w()]$",
        description="The resource group of the cluster's resources. When it does not exist, "
        "rayctl creates it for the cluster and `down` deletes it whole; an existing group is "
        "shared, and `down` deletes only what is tagged with the cluster.",
    )
    subscription_id: str | None = Field(
        None,
        description="Default: AZURE_SUBSCRIPTION_ID, else the Azure CLI's default subscription.",
    )
    availability_zone: str | None = Field(
        None,
        description="Zones to try in order when one has no capacity ('1,2,3'), 'auto' (Azure "
        "picks) or 'none' (no zone). A node type's azure_arm_parameters.availability_zone "
        "overrides it.",
    )
    cache_stopped_nodes: bool = Field(
        True,
        description="Deallocate idle on-demand workers instead of deleting them and start "
        "them again when a worker of the same type is needed (never Spot ones). "
        "`rayctl down` deletes deallocated workers too.",
    )
    use_internal_ips: bool = Field(
        False,
        description="Reach nodes at their private addresses (from inside the vnet); VMs then "
        "get no public IP.",
    )
    use_external_head_ip: bool = Field(
        False, description="With use_internal_ips, still give the head a public IP (as Ray)."
    )
    subnet_mask: str | None = Field(
        None,
        description="The address space of the cluster's vnet and subnet (CIDR). Default "
        "10.<n>.0.0/16, n derived from the group and cluster names, as in Ray.",
    )
    unique_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]{1,8}$",
        description="Ray's short id in its resource names; rayctl names the cluster's "
        "resources rayctl-<cluster>-... instead and ignores it (with a warning).",
    )
    msi_name: str | None = Field(
        None,
        description="An existing user-assigned managed identity for the head (with "
        "msi_resource_group). Default: one rayctl creates, with Contributor on the cluster's "
        "resource group only.",
    )
    msi_resource_group: str | None = None
    tags: dict[str, str] = Field({}, description="Extra tags on the resource group.")
    ssh_source_cidrs: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Where SSH (TCP 22) to the nodes may come from, e.g. [203.0.113.7/32]. "
        "Default: anywhere (key-only logins), as in Ray. Ray's ports are open only inside the "
        "cluster's subnet.",
    )


class BillingProfile(StrictModel):
    maxPrice: float = Field(
        -1, description="Highest price per hour in USD; -1: up to the on-demand price."
    )


class AzureArmParameters(StrictModel):
    """A node type's `azure_arm_parameters`, the parameters of Ray's VM template."""

    model_config = pydantic.ConfigDict(strict=False)  # YAML's 1.0 vs 1 are both fine here

    vmSize: str = Field(min_length=1, description="e.g. Standard_D2s_v3")
    imagePublisher: str | None = None
    imageOffer: str | None = None
    imageSku: str | None = None
    imageVersion: str = "latest"
    imageId: str | None = Field(None, description="A custom image's resource id.")
    osDiskSize: int | None = Field(None, gt=0, description="OS disk size in GB.")
    priority: Literal["Regular", "Spot", "Low"] = "Regular"
    evictionPolicy: Literal["Delete", "Deallocate"] = "Delete"
    billingProfile: BillingProfile | None = None
    enableAcceleratedNetworking: bool = False
    availability_zone: str | None = None
    # Ray fills these from auth; rayctl does the same and takes them when given.
    adminUsername: str | None = None
    publicKey: str | None = None

    @property
    def spot(self) -> bool:
        return self.priority in ("Spot", "Low")


# Template parameters Ray and rayctl decide themselves.
_OWN_KEYS = {
    "vmName": "rayctl names VMs itself",
    "vmTags": "give tags in node_config.tags",
    "vmCount": "the autoscaler decides how many VMs to launch",
    "msi": "set provider.msi_name and msi_resource_group for an identity of your own",
    "nsg": "rayctl creates the cluster's network security group",
    "subnet": "rayctl creates the cluster's subnet (see provider.subnet_mask)",
    "provisionPublicIp": "set provider.use_internal_ips (and use_external_head_ip)",
    "zones": "give zones in availability_zone",
}


def arm_parameters(node_config: dict[str, Any]) -> AzureArmParameters:
    """A node type's parameters, for a node_config that passed `check`."""
    return AzureArmParameters.model_validate(node_config["azure_arm_parameters"])


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """Offline checks: zones, CIDRs, the shared identity, each node type's parameters."""
    provider = config.provider
    assert isinstance(provider, AzureProviderConfig)
    problems = found.problems
    zone_problem = _zone_problem(provider.availability_zone)
    if zone_problem:
        problems.append((("provider", "availability_zone"), zone_problem))
    if (provider.msi_name is None) != (provider.msi_resource_group is None):
        problems.append(
            (("provider",), "give msi_name and msi_resource_group together, or neither")
        )
    check_ssh_sources(provider.ssh_source_cidrs, found)
    if provider.unique_id is not None:
        found.warnings.append(
            (
                ("provider", "unique_id"),
                "ignored: rayctl names the cluster's resources rayctl-<cluster>-... and finds "
                "them by their rayctl-cluster tag",
            )
        )
    if provider.subnet_mask:
        try:
            ipaddress.IPv4Network(provider.subnet_mask)
        except ValueError as exc:
            problems.append((("provider", "subnet_mask"), f"not an IPv4 CIDR block: {exc}"))
    for name, node_type in config.available_node_types.items():
        _check_node_config(node_type.node_config, ("available_node_types", name, "node_config"),
                           found)  # fmt: skip
    if not config.auth.ssh_user:
        problems.append((("auth", "ssh_user"), "the azure provider needs auth.ssh_user"))
    return resolve_private_key(config, base_dir)


def _check_node_config(node_config: dict[str, Any], path: KeyPath, found: Findings) -> None:
    problems = found.problems
    given = node_config.get("azure_arm_parameters")
    where: KeyPath = (*path, "azure_arm_parameters")
    if not isinstance(given, dict):
        problems.append((where, "needs azure_arm_parameters: {vmSize: ..., imagePublisher: ...}"))
        return
    own = [key for key in given if key in _OWN_KEYS]
    for key in own:
        problems.append(((*where, key), _OWN_KEYS[key]))
    try:
        params = AzureArmParameters.model_validate({k: v for k, v in given.items()
                                                    if k not in own})  # fmt: skip
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if error["type"] == "extra_forbidden":
                hint = suggest(str(loc[-1]), list(AzureArmParameters.model_fields))
                problems.append(((*where, *loc), f"not a parameter of Ray's VM template{hint}"))
            else:
                problems.append(((*where, *loc), error["msg"]))
        return
    if not params.imageId and not (params.imagePublisher and params.imageOffer and params.imageSku):
        problems.append(
            (where, "needs an image: imagePublisher, imageOffer and imageSku (or imageId)")
        )
    zone_problem = _zone_problem(params.availability_zone)
    if zone_problem:
        problems.append(((*where, "availability_zone"), zone_problem))
    if params.spot and params.evictionPolicy != "Delete":
        found.unsupported.append(
            (
                (*where, "evictionPolicy"),
                "Spot VMs are launched with evictionPolicy Delete (an evicted VM is gone, "
                "its disk too); deallocated Spot VMs are not reused",
            )
        )
    tags = node_config.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
    ):
        problems.append(((*path, "tags"), "must be a mapping of tag names to strings"))


_DEFAULT_PARAMETERS = {
    "vmSize": "Standard_D2s_v3",
    # Ubuntu 24.04, whose python3 runs rayctl's runtime (3.11+).
    "imagePublisher": "Canonical",
    "imageOffer": "ubuntu-24_04-lts",
    "imageSku": "server",
    "imageVersion": "latest",
}

SPEC = ProviderSpec(
    kind="azure",
    model=AzureProviderConfig,
    factory="rayctl.providers.azure.instances:AzureProvider",
    # As Ray's Azure defaults (a head and one worker type of Standard_D2s_v3).
    defaults={
        "head_node_type": "ray.head.default",
        "available_node_types": {
            name: {"node_config": {"azure_arm_parameters": dict(_DEFAULT_PARAMETERS)}}
            for name in ("ray.head.default", "ray.worker.default")
        },
        "auth": {"ssh_user": "ubuntu"},
    },
    check=check,
    extra="azure",
)
