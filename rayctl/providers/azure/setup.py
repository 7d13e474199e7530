"""What an Azure cluster needs before its VMs, and removing it after: the SDK clients (with
credentials and the subscription checked first), the resource group, the vnet and subnet, the
network security group, and the head's managed identity with its role on the group.

Everything rayctl creates carries the tag `rayctl-cluster: <cluster>`. A resource group
rayctl created also carries `rayctl-owned-by: <cluster>`: `down` deletes such a group whole;
a group that existed before is shared, and `down` deletes only the cluster's resources in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import Identity
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    AddressSpace,
    NetworkSecurityGroup,
    SecurityRule,
    Subnet,
    VirtualNetwork,
)
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import ResourceGroup

from rayctl.errors import AuthError, ProviderError
from rayctl.providers.azure.config import AzureProviderConfig
from rayctl.providers.azure.errors import call, code_of
from rayctl.runtime.nodes import Tag

OWNER_TAG = "rayctl-owned-by"  # on a resource group rayctl created for the cluster
# An ARM endpoint other than management.azure.com (a sovereign cloud, Azure Stack, a test's
# fake) and, for such an endpoint, a bearer token to use instead of azure-identity's.
ENDPOINT_ENV = "RAYCTL_AZURE_ENDPOINT"
TOKEN_ENV = "RAYCTL_AZURE_ACCESS_TOKEN"
ENV_VARS = (ENDPOINT_ENV, TOKEN_ENV, "AZURE_SUBSCRIPTION_ID")
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"  # Azure's built-in role id
# 429s are retried by the SDK's RetryPolicy, which waits what Retry-After says.
RETRY = {"retry_total": 8, "retry_backoff_factor": 1.0, "retry_backoff_max": 60}
PRINCIPAL_WAIT_S = 120.0  # a new identity takes a while to reach Entra ID's replicas


@dataclass(frozen=True)
class Clients:
    compute: ComputeManagementClient
    network: NetworkManagementClient
    resources: ResourceManagementClient
    msi: ManagedServiceIdentityClient
    authorization: AuthorizationManagementClient
    subscription: str


class StaticToken:
    """A bearer token given in the environment (for an endpoint of one's own)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class _AllowHttp(SansIOHTTPPolicy):
    """The bearer policy refuses to send a token over http unless a call says otherwise."""

    def on_request(self, request: PipelineRequest) -> None:
        request.context["enforce_https"] = False


def subscription_id(provider: AzureProviderConfig) -> str:
    """The config's subscription, else AZURE_SUBSCRIPTION_ID, else the Azure CLI's default."""
    found = provider.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID")
    if found:
        return found
    profile = Path.home() / ".azure" / "azureProfile.json"
    try:
        subscriptions = json.loads(profile.read_text(encoding="utf-8-sig"))["subscriptions"]
        return next(s["id"] for s in subscriptions if s.get("isDefault"))
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        raise AuthError(
            "no Azure subscription: set provider.subscription_id or AZURE_SUBSCRIPTION_ID, "
            "or choose one with `az account set --subscription ID`"
        ) from None


def make_clients(
    provider: AzureProviderConfig,
    credential: TokenCredential | None = None,
    *,
    endpoint: str | None = None,
    **options: Any,
) -> Clients:
    """The SDK clients for the cluster's subscription, with `credential` (default: a bearer
    token from RAYCTL_AZURE_ACCESS_TOKEN, else DefaultAzureCredential) against `endpoint`
    (default: RAYCTL_AZURE_ENDPOINT, else Azure's)."""
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV)
    if credential is None:
        token = os.environ.get(TOKEN_ENV)
        if token:
            credential = StaticToken(token)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
    subscription = subscription_id(provider)
    kwargs: dict[str, Any] = {"credential": credential, "subscription_id": subscription}
    if endpoint:
        kwargs["base_url"] = endpoint
        if endpoint.startswith("http://"):
            kwargs["per_call_policies"] = [_AllowHttp()]
    kwargs |= RETRY | options
    return Clients(
        compute=ComputeManagementClient(**kwargs),
        network=NetworkManagementClient(**kwargs),
        resources=ResourceManagementClient(**kwargs),
        msi=ManagedServiceIdentityClient(**kwargs),
        authorization=AuthorizationManagementClient(**kwargs),
        subscription=subscription,
    )


def check_access(clients: Clients) -> None:
    """The credentials work and the subscription is there and enabled: nothing is created
    before this passes."""
    request = HttpRequest(
        "GET", f"/subscriptions/{clients.subscription}", params={"api-version": "2022-12-01"}
    )

    def get() -> dict[str, Any]:
        response = clients.resources.send_request(request)
        response.raise_for_status()
        return response.json()

    try:
        found = call(get, f"read subscription {clients.subscription}")
    except ProviderError as exc:
        if "SubscriptionNotFound" in str(exc) or "404" in str(exc):
            raise AuthError(
                f"subscription {clients.subscription} is not there or not visible to the "
                "credentials in use; check provider.subscription_id (`az account list`)"
            ) from None
        raise
    assert found is not None
    if found.get("state") not in ("Enabled", "Warned"):
        raise AuthError(
            f"subscription {clients.subscription} is {found.get('state')}: it cannot create VMs"
        )


# -- names ----------------------------------------------------------------------------------


def slug(cluster_name: str) -> str:
    """The cluster's name in Azure resource names (letters, digits and hyphens)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", cluster_name).strip("-")[:40] or "cluster"


def names(cluster_name: str) -> dict[str, str]:
    base = f"rayctl-{slug(cluster_name)}"
    return {"vnet": f"{base}-vnet", "nsg": f"{base}-nsg", "msi": f"{base}-msi", "subnet": "nodes"}


def address_space(provider: AzureProviderConfig, cluster_name: str) -> str:
    """subnet_mask, or 10.<n>.0.0/16 with n from the group and cluster names (as in Ray)."""
    if provider.subnet_mask:
        return provider.subnet_mask
    digest = hashlib.sha256(f"{provider.resource_group}/{cluster_name}".encode()).digest()
    return f"10.{digest[0] % 254 + 1}.0.0/16"


def cluster_tags(cluster_name: str) -> dict[str, str]:
    return {Tag.CLUSTER: cluster_name}


# -- bootstrap ------------------------------------------------------------------------------


def ensure_group(clients: Clients, provider: AzureProviderConfig, cluster_name: str) -> None:
    """The resource group, created for the cluster (and owned by it) when it does not
    exist."""
    group = provider.resource_group
    found = call(
        lambda: clients.resources.resource_groups.get(group),
        f"read resource group {group}",
        missing_ok=True,
    )
    if found is not None:
        if found.location and found.location.lower() != provider.location.lower():
            raise ProviderError(
                f"resource group {group} is in {found.location}, not {provider.location}: "
                "set provider.location to it, or name another resource_group"
            )
        return
    tags = {**provider.tags, **cluster_tags(cluster_name), OWNER_TAG: cluster_name}
    call(
        lambda: clients.resources.resource_groups.create_or_update(
            group, ResourceGroup(location=provider.location, tags=tags)
        ),
        f"create resource group {group}",
    )


def ensure_network(
    clients: Clients,
    provider: AzureProviderConfig,
    cluster_name: str,
    ssh_sources: list[str],
) -> str:
    """The NSG (the subnet's traffic among itself, SSH from `ssh_sources`, nothing else in)
    and the vnet with its subnet behind it. Returns the subnet's id."""
    group = provider.resource_group
    name = names(cluster_name)
    space = address_space(provider, cluster_name)
    tags = cluster_tags(cluster_name)
    rules = [
        SecurityRule(
            name="rayctl-within-subnet",
            priority=1000,
            direction="Inbound",
            access="Allow",
            protocol="*",
            source_address_prefix=space,
            source_port_range="*",
            destination_address_prefix=space,
            destination_port_range="*",
        ),
        SecurityRule(
            name="rayctl-ssh",
            priority=1010,
            direction="Inbound",
            access="Allow",
            protocol="Tcp",
            source_address_prefixes=ssh_sources,
            source_port_range="*",
            destination_address_prefix="*",
            destination_port_range="22",
        ),
    ]
    nsg = call(
        lambda: clients.network.network_security_groups.begin_create_or_update(
            group,
            name["nsg"],
            NetworkSecurityGroup(location=provider.location, tags=tags, security_rules=rules),
        ).result(),
        f"create network security group {name['nsg']}",
    )
    assert nsg is not None
    subnet = Subnet(name=name["subnet"], address_prefix=space, network_security_group=nsg)
    vnet = call(
        lambda: clients.network.virtual_networks.begin_create_or_update(
            group,
            name["vnet"],
            VirtualNetwork(
                location=provider.location,
                tags=tags,
                address_space=AddressSpace(address_prefixes=[space]),
                subnets=[subnet],
            ),
        ).result(),
        f"create virtual network {name['vnet']}",
    )
    assert vnet is not None and vnet.subnets
    return str(vnet.subnets[0].id)


def ensure_identity(clients: Clients, provider: AzureProviderConfig, cluster_name: str) -> str:
    """The head's user-assigned identity (the config's shared one, or one rayctl creates
    with Contributor on the cluster's resource group only). Returns its id."""
    if provider.msi_name and provider.msi_resource_group:
        shared = call(
            lambda: clients.msi.user_assigned_identities.get(
                provider.msi_resource_group, provider.msi_name
            ),
            f"read managed identity {provider.msi_resource_group}/{provider.msi_name}",
        )
        assert shared is not None
        return str(shared.id)
    group = provider.resource_group
    name = names(cluster_name)["msi"]
    identity = call(
        lambda: clients.msi.user_assigned_identities.create_or_update(
            group, name, Identity(location=provider.location, tags=cluster_tags(cluster_name))
        ),
        f"create managed identity {name}",
    )
    assert identity is not None
    scope = group_scope(clients, group)
    role = RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{clients.subscription}/providers/"
        f"Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}",
        principal_id=identity.principal_id,
        principal_type="ServicePrincipal",
    )
    deadline = time.monotonic() + PRINCIPAL_WAIT_S
    while True:
        try:
            clients.authorization.role_assignments.create(
                scope, role_assignment_name(identity.id, scope), role
            )
            return str(identity.id)
        except HttpResponseError as exc:
            code = code_of(exc)
            if code == "RoleAssignmentExists":
                return str(identity.id)
            if code != "PrincipalNotFound" or time.monotonic() > deadline:
                call(_raise(exc), f"give {name} the Contributor role on {group}")
            time.sleep(2)  # the identity is new: Entra ID has not seen it yet


def _raise(exc: Exception) -> Callable[[], None]:
    def again() -> None:
        raise exc

    return again


def group_scope(clients: Clients, group: str) -> str:
    return f"/subscriptions/{clients.subscription}/resourceGroups/{group}"


def role_assignment_name(identity_id: str, scope: str) -> str:
    """Stable per identity and scope, so a repeated bootstrap finds its own assignment."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{identity_id.lower()}|{scope.lower()}"))


def identity_client_id(clients: Clients, identity_id: str) -> str:
    """The client id of the head's identity (what DefaultAzureCredential is told to use)."""
    parts = identity_id.split("/")
    identity = call(
        lambda: clients.msi.user_assigned_identities.get(parts[4], parts[-1]),
        f"read managed identity {parts[-1]}",
    )
    assert identity is not None
    return str(identity.client_id)


# -- cleanup --------------------------------------------------------------------------------


def owns_group(clients: Clients, group: str, cluster_name: str) -> bool:
    """Whether rayctl created `group` for this cluster (False when it is gone)."""
    found = call(
        lambda: clients.resources.resource_groups.get(group),
        f"read resource group {group}",
        missing_ok=True,
    )
    return found is not None and (found.tags or {}).get(OWNER_TAG) == cluster_name


def delete_group(clients: Clients, group: str, *, wait: bool = True) -> None:
    """The whole group and everything in it, waited for; without `wait` (the caller is in
    it), the request only: its poller would poll on in a thread of its own."""

    def delete() -> None:
        if wait:
            clients.resources.resource_groups.begin_delete(group).result()
        else:
            clients.resources.resource_groups.begin_delete(group, polling=False)

    call(delete, f"delete resource group {group}", missing_ok=True)


def delete_cluster_resources(
    clients: Clients, provider: AzureProviderConfig, cluster_name: str
) -> None:
    """In a shared group: the role assignment and identity rayctl made (the assignment found
    by its name, also when its identity is gone already), then the vnet, then the NSG (each
    gone already is fine)."""
    group = provider.resource_group
    name = names(cluster_name)
    if not (provider.msi_name and provider.msi_resource_group):
        scope = group_scope(clients, group)
        assignment = role_assignment_name(identity_id(clients, group, name["msi"]), scope)
        call(
            lambda: clients.authorization.role_assignments.delete(scope, assignment),
            f"delete the role assignment of {name['msi']}",
            missing_ok=True,
        )
        delete_identity(clients, provider, cluster_name)
    call(
        lambda: clients.network.virtual_networks.begin_delete(group, name["vnet"]).result(),
        f"delete virtual network {name['vnet']}",
        missing_ok=True,
    )
    call(
        lambda: clients.network.network_security_groups.begin_delete(group, name["nsg"]).result(),
        f"delete network security group {name['nsg']}",
        missing_ok=True,
    )


def identity_id(clients: Clients, group: str, name: str) -> str:
    return (
        f"{group_scope(clients, group)}/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/{name}"
    )


def delete_identity(clients: Clients, provider: AzureProviderConfig, cluster_name: str) -> None:
    """The head's identity rayctl made (gone already is fine)."""
    name = names(cluster_name)["msi"]
    call(
        lambda: clients.msi.user_assigned_identities.delete(provider.resource_group, name),
        f"delete managed identity {name}",
        missing_ok=True,
    )
