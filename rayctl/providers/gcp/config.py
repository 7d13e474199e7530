"""The gcp provider's declaration: its `provider:` section, defaults and checks (light: the
SDK, google-cloud-compute, is imported only by the provider itself, rayctl.providers.gcp.instances).

node_config is the Compute Engine Instance resource as Ray's GCP configs give it
(machineType, disks[].initializeParams.sourceImage, guestAccelerators, scheduling,
serviceAccounts, metadata, labels, networkInterfaces, and any other Instance field, passed
through as given)."""

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
from rayctl.providers.gcp import labels


class GCPCredentials(StrictModel):
    """Ray's `provider.gcp_credentials`: a service account key (its JSON, or a path to it)
    or an OAuth token. Without it, Application Default Credentials are used."""

    type: Literal["service_account", "credentials_token"]
    credentials: str = Field(min_length=1)


class GCPAllowed(StrictModel):
    IPProtocol: str = Field("tcp", min_length=1, description="tcp, udp, icmp, all, ...")
    ports: list[Annotated[str, Field(pattern=r"^\d+(-\d+)?$")]] = Field(
        [], description='Ports or ranges ("8000", "8000-8100"); none: every port.'
    )


class GCPFirewallRule(StrictModel):
    """An extra inbound rule for the cluster's nodes, in GCE's Firewall form."""

    sourceRanges: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    allowed: list[GCPAllowed] = Field(min_length=1)


class GCPProviderConfig(ProviderSettings):
    """Compute Engine instances in one region, with Application Default Credentials (gcloud
    auth application-default login, GOOGLE_APPLICATION_CREDENTIALS, or the head's service
    account) or `gcp_credentials`."""

    type: Literal["gcp"]
    # The head removes its cluster (autostop with `down`: GCPProvider.remove_from_head) or
    # stops its nodes for a later `up` (without: GCPProvider.stop_nodes).
    capabilities: ClassVar[Capabilities] = Capabilities(removes_itself=True, stops_nodes=True)
    project_id: str | None = Field(
        None,
        description="The GCP project. Default (as `null` in Ray's examples): the project of "
        "the credentials in use.",
    )
    region: str = Field(min_length=1, description="The region, e.g. us-west1.")
    availability_zone: str | None = Field(
        None,
        description="The zone to launch in (Ray's key), e.g. us-west1-a; comma-separated "
        "zones are tried in order.",
    )
    availability_zones: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Zones to try in order when one has no capacity (after availability_zone's).",
    )
    cache_stopped_nodes: bool = Field(
        True,
        description="Stop idle on-demand workers instead of deleting them and start them "
        "again when a worker of the same type and node_config is needed (never spot or "
        "preemptible ones). `rayctl down` deletes stopped workers too.",
    )
    use_internal_ips: bool = Field(
        False, description="Reach nodes at their internal addresses (from inside the VPC)."
    )
    gcp_credentials: GCPCredentials | None = None
    ssh_source_cidrs: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="Where SSH (TCP 22) to the nodes may come from, e.g. [203.0.113.7/32]. "
        "Default: anywhere (0.0.0.0/0, key-only logins), as in Ray. Ray's ports are open "
        "only between the cluster's nodes (by network tag).",
    )
    firewall_rules: list[GCPFirewallRule] = Field(
        [],
        description="Extra inbound rules for the cluster's nodes (e.g. Serve's 8000 from "
        "your office). Rules that open Ray's ports to public addresses are refused.",
    )
    network: str = Field(
        "global/networks/default",
        description="The VPC network of the cluster's firewall rule and nodes (unless "
        "node_config names networkInterfaces).",
    )
    service_account: str | None = Field(
        None,
        description="The head's service account (email). Default: one rayctl creates for "
        "the cluster with roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser "
        "only (never the project's default compute account).",
    )

    @property
    def zones(self) -> list[str]:
        given = [z.strip() for z in (self.availability_zone or "").split(",") if z.strip()]
        return list(dict.fromkeys([*given, *(self.availability_zones or [])]))


# Instance fields rayctl decides itself.
_OWN_KEYS = {
    "name": "rayctl names instances itself",
    "zone": "give zones in provider.availability_zone(s): rayctl tries them in order",
}
TPU_KEYS = ("acceleratorType", "runtimeVersion", "acceleratorConfig")
SSH_KEYS = "ssh-keys"


def check(config: ClusterConfig, base_dir: Path, found: Findings) -> ClusterConfig:
    """Offline checks: zones in the region, CIDRs, node_config's shape and labels, TPUs."""
    provider = config.provider
    assert isinstance(provider, GCPProviderConfig)
    problems = found.problems
    if not provider.zones:
        # Ray's GCP provider needs availability_zone too; a guessed zone may not exist.
        problems.append(
            (
                ("provider",),
                f"no zone: set provider.availability_zone to a zone of {provider.region} "
                f"(e.g. {provider.region}-a; `gcloud compute zones list --filter "
                f"region:{provider.region}` lists them)",
            )
        )
    for index, zone in enumerate(provider.zones):
        if not zone.startswith(provider.region + "-"):
            where = (
                "availability_zone"
                if zone in (provider.availability_zone or "")
                else ("availability_zones")
            )
            problems.append(
                (
                    ("provider", where),
                    f"zone '{zone}' (entry {index + 1}) is not in region {provider.region}",
                )
            )
    if provider.project_id is None:
        found.warnings.append(
            (
                ("provider", "project_id"),
                "no project_id: the project of your credentials is used (gcloud config "
                "set project ID, or set provider.project_id)",
            )
        )
    check_ssh_sources(provider.ssh_source_cidrs, found)
    for index, rule in enumerate(provider.firewall_rules):
        problem = _rule_problem(rule)
        if problem:
            problems.append((("provider", "firewall_rules", index), problem))
    for name, node_type in config.available_node_types.items():
        path: KeyPath = ("available_node_types", name, "node_config")
        node_config = node_type.node_config
        if any(k in node_config for k in TPU_KEYS):
            found.unsupported.append(
                (path, "TPU VMs are not supported yet; use GPU or CPU machine types")
            )
            continue
        if "sourceInstanceTemplate" not in node_config:
            if "machineType" not in node_config:
                problems.append((path, "needs a machineType (e.g. n2-standard-4)"))
            if not _has_boot_disk(node_config.get("disks")):
                problems.append(
                    (
                        path,
                        "needs a boot disk: disks: [{boot: true, initializeParams: "
                        "{sourceImage: projects/ubuntu-os-cloud/global/images/family/"
                        "ubuntu-2404-lts-amd64}}]",
                    )
                )
        for key, why in _OWN_KEYS.items():
            if key in node_config:
                problems.append(((*path, key), why))
        _check_labels(node_config.get("labels"), (*path, "labels"), problems)
        _check_metadata(node_config.get("metadata"), (*path, "metadata"), problems)
    if not config.auth.ssh_user:
        problems.append((("auth", "ssh_user"), "the gcp provider needs auth.ssh_user"))
    return resolve_private_key(config, base_dir)


def _rule_problem(rule: GCPFirewallRule) -> str | None:
    """Why an extra rule is refused: it lets a public address reach one of Ray's ports."""
    try:
        networks = [ipaddress.ip_network(r.strip(), strict=False) for r in rule.sourceRanges]
    except ValueError as exc:
        return f"sourceRanges: not a CIDR block: {exc}"
    for allowed in rule.allowed:
        if allowed.IPProtocol.lower() not in ("tcp", "6", "all"):
            continue  # Ray speaks only TCP
        spans = [tuple(int(p) for p in (r.split("-") * 2)[:2]) for r in allowed.ports]
        for low, high in spans or [(0, 65535)]:
            problem = ray_exposure(networks, low, high)
            if problem:
                return problem
    return None


def _has_boot_disk(disks: Any) -> bool:
    return isinstance(disks, list) and any(
        isinstance(d, dict) and d.get("boot") and (d.get("initializeParams") or d.get("source"))
        for d in disks
    )


def _check_labels(given: Any, path: KeyPath, problems: list[tuple[KeyPath, str]]) -> None:
    if given is None:
        return
    if not isinstance(given, dict):
        problems.append((path, "must be a mapping of label keys to values"))
        return
    for key, value in given.items():
        problem = labels.key_problem(str(key)) or labels.value_problem(str(value))
        if problem:
            problems.append(((*path, key), problem))
        elif str(key).startswith("rayctl-"):
            problems.append(((*path, key), "labels starting with rayctl- are rayctl's own"))


def _check_metadata(given: Any, path: KeyPath, problems: list[tuple[KeyPath, str]]) -> None:
    """Instance metadata as GCE takes it: {items: [{key, value}, ...]}."""
    if given is None:
        return
    items = given.get("items") if isinstance(given, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
    ):
        problems.append((path, "must be {items: [{key: ..., value: ...}, ...]}"))


SPEC = ProviderSpec(
    kind="gcp",
    model=GCPProviderConfig,
    factory="rayctl.providers.gcp.instances:GCPProvider",
    # As Ray's GCP defaults, on an image whose python3 runs rayctl's runtime (3.11+).
    defaults={
        "head_node_type": "ray_head_default",
        "available_node_types": {
            name: {
                "node_config": {
                    "machineType": "n2-standard-2",
                    "disks": [
                        {
                            "boot": True,
                            "autoDelete": True,
                            "type": "PERSISTENT",
                            "initializeParams": {
                                "diskSizeGb": 50,
                                "sourceImage": "projects/ubuntu-os-cloud/global/images/"
                                "family/ubuntu-2404-lts-amd64",
                            },
                        }
                    ],
                }
            }
            for name in ("ray_head_default", "ray_worker_small")
        },
        "auth": {"ssh_user": "ubuntu"},
    },
    check=check,
    extra="gcp",
)
