"""What a GCP cluster needs before nodes launch: credentials and the project, the permissions
`up` will use (checked with testIamPermissions before anything is created), the cluster's
firewall rules and the head's service account. Lookups and creations are separate so that
`bootstrap` checks everything first.

Endpoints and credentials are injectable (tests point them at a fake on loopback; the head's
monitor gets them through the environment, as AWS_ENDPOINT_URL for moto):
RAYCTL_GCP_ENDPOINT (Compute Engine), RAYCTL_GCP_CRM_ENDPOINT (Resource Manager) and
RAYCTL_GCP_IAM_ENDPOINT (IAM), each defaulting to RAYCTL_GCP_ENDPOINT when that is set;
RAYCTL_GCP_CREDENTIALS=anonymous (only with an endpoint: no credentials are sent).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1

from rayctl.errors import AuthError, ProviderError
from rayctl.providers.gcp.config import GCPProviderConfig
from rayctl.providers.gcp.errors import call, convert, operation_error

ENDPOINT_ENV = "RAYCTL_GCP_ENDPOINT"
CRM_ENDPOINT_ENV = "RAYCTL_GCP_CRM_ENDPOINT"
IAM_ENDPOINT_ENV = "RAYCTL_GCP_IAM_ENDPOINT"
CREDENTIALS_ENV = "RAYCTL_GCP_CREDENTIALS"
ENV_VARS = (ENDPOINT_ENV, CRM_ENDPOINT_ENV, IAM_ENDPOINT_ENV, CREDENTIALS_ENV)
_CRM = "https://cloudresourcemanager.googleapis.com"
ANYWHERE = "0.0.0.0/0"  # SSH's default source, as in Ray
_IAM = "https://iam.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# What the head's autoscaler does: instances (and their disks) of the cluster, and attach
# service accounts workers name.
HEAD_ROLES = ("roles/compute.instanceAdmin.v1", "roles/iam.serviceAccountUser")
# Autostop with `down`, the head removing its cluster: it deletes the cluster's firewall
# rules with this role, bound under a condition naming those rules and their network
# (deleting a rule needs compute.networks.updatePolicy on it), and last its own account with
# OWN_ACCOUNT_ROLE, granted on that account alone.
FIREWALL_ROLE = "roles/compute.securityAdmin"
OWN_ACCOUNT_ROLE = "roles/iam.serviceAccountAdmin"
# What `up` and `down` call, checked before anything is created.
LAUNCH_PERMISSIONS = (
    "compute.instances.create",
    "compute.instances.list",
    "compute.instances.get",
    "compute.instances.delete",
    "compute.instances.setLabels",
    "compute.instances.setMetadata",
    "compute.instances.setTags",
    "compute.instances.stop",
    "compute.instances.start",
    "compute.disks.create",
    "compute.disks.list",
    "compute.disks.delete",
    "compute.disks.setLabels",
    "compute.subnetworks.use",
    "compute.firewalls.create",
    "compute.firewalls.list",
    "compute.firewalls.delete",
    "compute.networks.updatePolicy",
    "compute.zoneOperations.get",
)
EXTERNAL_IP_PERMISSIONS = ("compute.subnetworks.useExternalIp",)
SERVICE_ACCOUNT_PERMISSIONS = (
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.delete",
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.setIamPolicy",
    "compute.instances.setServiceAccount",
    "resourcemanager.projects.getIamPolicy",
    "resourcemanager.projects.setIamPolicy",
)


@dataclass(frozen=True)
class Access:
    """Who rayctl is in GCP and where it calls: found once per provider."""

    credentials: Credentials
    project: str
    compute_endpoint: str | None
    crm_endpoint: str
    iam_endpoint: str

    def client_options(self) -> ClientOptions | None:
        if self.compute_endpoint is None:
            return None
        return ClientOptions(api_endpoint=self.compute_endpoint)

    def compute(self, client: type[Any]) -> Any:
        """A google-cloud-compute client (REST) for this access."""
        return client(credentials=self.credentials, client_options=self.client_options())

    def session(self) -> AuthorizedSession:
        return AuthorizedSession(self.credentials)


def access(provider: GCPProviderConfig, credentials: Credentials | None = None) -> Access:
    """Credentials (given, the environment's injected ones, the config's gcp_credentials,
    else Application Default Credentials) and the project (config, else the credentials')."""
    endpoint = os.environ.get(ENDPOINT_ENV) or None
    project: str | None = None
    if credentials is None:
        credentials, project = _credentials(provider, injected=endpoint is not None)
    project = provider.project_id or project
    if not project:
        raise AuthError(
            "no GCP project: set provider.project_id, or `gcloud config set project ID`"
        )
    return Access(
        credentials=credentials,
        project=project,
        compute_endpoint=endpoint,
        crm_endpoint=(os.environ.get(CRM_ENDPOINT_ENV) or endpoint or _CRM).rstrip("/"),
        iam_endpoint=(os.environ.get(IAM_ENDPOINT_ENV) or endpoint or _IAM).rstrip("/"),
    )


def _credentials(provider: GCPProviderConfig, *, injected: bool) -> tuple[Credentials, str | None]:
    if injected and os.environ.get(CREDENTIALS_ENV) == "anonymous":
        return AnonymousCredentials(), None  # type: ignore[no-untyped-call]
    given = provider.gcp_credentials
    try:
        if given is not None and given.type == "service_account":
            from google.oauth2 import service_account

            text = given.credentials
            path = Path(os.path.expanduser(text))
            info = json.loads(path.read_text() if not text.lstrip().startswith("{") else text)
            sa = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return sa, info.get("project_id")
        if given is not None:
            from google.oauth2.credentials import Credentials as TokenCredentials

            return TokenCredentials(given.credentials), None
        found, project = google.auth.default(scopes=SCOPES)
        return found, project
    except (OSError, ValueError) as exc:
        raise AuthError(
            f"provider.gcp_credentials: cannot read the service account key: {exc}"
        ) from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise convert(exc, "finding credentials") from None


# --- REST calls of the APIs google-cloud-compute does not cover ----------------------------


def _rest(session: AuthorizedSession, method: str, url: str, action: str, **kw: Any) -> Any:
    """One JSON call; HTTP errors raised as rayctl errors (404 answers None)."""

    def once() -> Any:
        response = session.request(method, url, timeout=60, **kw)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise gexc.from_http_response(response)
        return response.json() if response.content else {}

    return call(once, action)


def missing_permissions(acc: Access, wanted: Sequence[str]) -> list[str]:
    """Those of `wanted` the credentials lack on the project (testIamPermissions)."""
    url = f"{acc.crm_endpoint}/v1/projects/{acc.project}:testIamPermissions"
    reply = _rest(
        acc.session(),
        "POST",
        url,
        "resourcemanager.projects.testIamPermissions",
        json={"permissions": list(wanted)},
    )
    if reply is None:
        raise ProviderError(f"GCP project {acc.project} not found: check provider.project_id")
    granted = set(reply.get("permissions", []))
    return [p for p in wanted if p not in granted]


def check_permissions(acc: Access, wanted: Sequence[str]) -> None:
    missing = missing_permissions(acc, wanted)
    if missing:
        raise AuthError(
            f"the GCP credentials in use lack these permissions on project {acc.project}: "
            f"{', '.join(missing)}; grant them (e.g. roles/compute.instanceAdmin.v1, "
            "roles/compute.securityAdmin, roles/iam.serviceAccountAdmin and "
            "roles/resourcemanager.projectIamAdmin) and run `rayctl up` again"
        )


# --- names ----------------------------------------------------------------------------------


def cluster_slug(cluster: str) -> str:
    """A GCE resource name part for the cluster: lowercase, its hash telling apart names that
    differ only in case or punctuation (`De.v` and `de-v`)."""
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9]+", "-", cluster.lower()).strip("-")[:20].strip("-")
    return f"{readable}-{digest}" if readable else digest


def network_tag(cluster: str) -> str:
    """The network tag of the cluster's instances, which its firewall rules target."""
    return f"rayctl-{cluster_slug(cluster)}"


def firewall_names(cluster: str) -> tuple[str, str]:
    """(traffic between the cluster's nodes, SSH from ssh_source_cidrs); the config's extra
    rules are named after them, -extra-N."""
    tag = network_tag(cluster)
    return f"{tag}-internal", f"{tag}-ssh"


def service_account_email(cluster: str, project: str) -> str:
    account = f"rayctl-{hashlib.sha256(cluster.encode()).hexdigest()[:12]}"
    return f"{account}@{project}.iam.gserviceaccount.com"


# --- firewall -------------------------------------------------------------------------------


def firewall_rules(cluster: str, provider: GCPProviderConfig) -> list[compute_v1.Firewall]:
    """Everything between the cluster's nodes (by network tag), SSH from ssh_source_cidrs
    (default anywhere), the config's extra rules (checked: none opens Ray's ports to public
    addresses), and nothing else."""
    tag = network_tag(cluster)
    internal, ssh = firewall_names(cluster)
    about = f"rayctl cluster {cluster}"

    def rule(name: str, what: str, allowed: list[compute_v1.Allowed], **source: Any) -> Any:
        return compute_v1.Firewall(
            name=name,
            network=provider.network,
            direction="INGRESS",
            description=f"{about}: {what}",
            target_tags=[tag],
            allowed=allowed,
            **source,
        )

    everything = [compute_v1.Allowed(I_p_protocol=p) for p in ("tcp", "udp", "icmp")]
    ssh_port = [compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])]
    rules = [
        rule(internal, "traffic between its nodes", everything, source_tags=[tag]),
        rule(ssh, "SSH", ssh_port, source_ranges=provider.ssh_source_cidrs or [ANYWHERE]),
    ]
    for index, extra in enumerate(provider.firewall_rules):
        allowed = [
            compute_v1.Allowed(I_p_protocol=a.IPProtocol, ports=a.ports) for a in extra.allowed
        ]
        rules.append(
            rule(
                f"{tag}-extra-{index}",
                f"rule {index} of provider.firewall_rules",
                allowed,
                source_ranges=extra.sourceRanges,
            )
        )
    return rules


def _same(found: compute_v1.Firewall, wanted: compute_v1.Firewall) -> bool:
    def key(rule: compute_v1.Firewall) -> tuple[Any, ...]:
        allowed = sorted((a.I_p_protocol, tuple(a.ports)) for a in rule.allowed)
        return (sorted(rule.source_ranges), sorted(rule.source_tags), allowed)

    return key(found) == key(wanted)


def ensure_firewall(acc: Access, cluster: str, rules: Sequence[compute_v1.Firewall]) -> None:
    """Make the cluster's rules exactly `rules`: create the missing ones, replace changed
    ones, delete those no longer wanted (an extra rule dropped from the config)."""
    client = acc.compute(compute_v1.FirewallsClient)
    found = {f.name: f for f in cluster_firewalls(acc, cluster)}
    wanted = {r.name: r for r in rules}
    stale = [n for n, f in found.items() if n not in wanted or not _same(f, wanted[n])]
    delete_firewall(acc, stale)
    ops = [
        call(
            client.insert_unary,
            "compute.firewalls.create",
            project=acc.project,
            firewall_resource=rule,
        )
        for name, rule in wanted.items()
        if name not in found or name in stale
    ]
    for op in ops:
        wait_global(acc, op, "compute.firewalls.create")


def cluster_firewalls(acc: Access, cluster: str) -> list[compute_v1.Firewall]:
    """The project's firewall rules named for the cluster (firewalls carry no labels)."""
    client = acc.compute(compute_v1.FirewallsClient)
    prefix = network_tag(cluster) + "-"
    rules = call(lambda: list(client.list(project=acc.project)), "compute.firewalls.list")
    return [r for r in rules if r.name.startswith(prefix)]


def delete_firewall(acc: Access, names: Sequence[str]) -> None:
    client = acc.compute(compute_v1.FirewallsClient)
    for name in names:
        op = call(
            client.delete_unary,
            "compute.firewalls.delete",
            allow=(gexc.NotFound,),
            project=acc.project,
            firewall=name,
        )
        if op is not None:
            wait_global(acc, op, "compute.firewalls.delete")


def wait_global(acc: Access, op: compute_v1.Operation, action: str) -> None:
    client = acc.compute(compute_v1.GlobalOperationsClient)
    while op.status != compute_v1.Operation.Status.DONE:
        op = call(client.wait, action, project=acc.project, operation=op.name)
    error = operation_error(op, action)
    if error is not None:
        raise error


# --- the head's service account ---------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """A role in an allow policy, with the IAM condition it is bound under (None: none)."""

    role: str
    condition: dict[str, str] | None = None


def head_bindings(project: str, cluster: str, network: str) -> list[Binding]:
    """The head's roles on the project: HEAD_ROLES, and FIREWALL_ROLE under a condition that
    names only the cluster's firewall rules and their network."""
    rules = f"projects/{project}/global/firewalls/{network_tag(cluster)}-"
    condition = {
        "title": f"rayctl {cluster_slug(cluster)} firewall",
        "description": f"rayctl cluster {cluster}: its firewall rules, removed by its head",
        "expression": f'resource.name.startsWith("{rules}") || '
        f'resource.name == "{network_resource(network, project)}"',
    }
    return [Binding(role) for role in HEAD_ROLES] + [Binding(FIREWALL_ROLE, condition)]


def network_resource(network: str, project: str) -> str:
    """The network's IAM resource name (`projects/P/global/networks/N`) from the forms a
    config gives it in (`default`, `global/networks/default`, a URL)."""
    if "projects/" in network:
        return "projects/" + network.split("projects/", 1)[1]
    return f"projects/{project}/global/networks/{network.rsplit('/', 1)[-1]}"


def ensure_service_account(acc: Access, cluster: str, network: str) -> str:
    """The head's own service account: head_bindings on the project, OWN_ACCOUNT_ROLE on
    itself, and nothing else."""
    email = service_account_email(cluster, acc.project)
    session = acc.session()
    url = _account_url(acc, email)
    if _rest(session, "GET", url, "iam.serviceAccounts.get") is None:
        _rest(
            session,
            "POST",
            url.rsplit("/", 1)[0],
            "iam.serviceAccounts.create",
            json={
                "accountId": email.split("@")[0],
                "serviceAccount": {
                    "displayName": f"rayctl head of {cluster}"[:100],
                    "description": f"rayctl cluster {cluster}: the head's autoscaler",
                },
            },
        )
    member = f"serviceAccount:{email}"
    _edit_policy(
        acc,
        _project_url(acc),
        "resourcemanager.projects",
        _binding(member, head_bindings(acc.project, cluster, network)),
    )
    _edit_policy(acc, url, "iam.serviceAccounts", _binding(member, [Binding(OWN_ACCOUNT_ROLE)]))
    return email


def delete_service_account(acc: Access, cluster: str) -> None:
    """The head's account and its roles on the project (those of the account, and those a
    deleted account left)."""
    email = service_account_email(cluster, acc.project)
    _edit_policy(
        acc, _project_url(acc), "resourcemanager.projects", _unbinding(f"serviceAccount:{email}")
    )
    delete_account(acc, cluster)


def delete_account(acc: Access, cluster: str) -> None:
    """The head's account only (what the head may do: its roles on the project stay, inert,
    as `deleted:` members, until IAM drops them or `rayctl down` removes them)."""
    url = _account_url(acc, service_account_email(cluster, acc.project))
    _rest(acc.session(), "DELETE", url, "iam.serviceAccounts.delete")


def _project_url(acc: Access) -> str:
    return f"{acc.crm_endpoint}/v1/projects/{acc.project}"


def _account_url(acc: Access, email: str) -> str:
    return f"{acc.iam_endpoint}/v1/projects/{acc.project}/serviceAccounts/{email}"


PolicyEdit = Callable[[list[dict[str, Any]]], bool]


def _binding(member: str, wanted: Sequence[Binding]) -> PolicyEdit:
    """An edit that gives `member` each of `wanted` (a role with its condition)."""

    def edit(bindings: list[dict[str, Any]]) -> bool:
        changed = False
        for want in wanted:
            binding = next(
                (
                    b
                    for b in bindings
                    if b.get("role") == want.role and b.get("condition") == want.condition
                ),
                None,
            )
            if binding is None:
                binding = {"role": want.role, "members": []}
                if want.condition is not None:
                    binding["condition"] = want.condition
                bindings.append(binding)
            if member not in binding["members"]:
                binding["members"].append(member)
                changed = True
        return changed

    return edit


def _unbinding(member: str) -> PolicyEdit:
    """An edit that takes every role away from `member`, also as a deleted principal."""
    deleted = f"deleted:{member}?uid="

    def edit(bindings: list[dict[str, Any]]) -> bool:
        changed = False
        for binding in bindings:
            members = binding.get("members", [])
            kept = [m for m in members if m != member and not m.startswith(deleted)]
            changed |= kept != members
            binding["members"] = kept
        return changed

    return edit


def _edit_policy(acc: Access, resource_url: str, api: str, edit: PolicyEdit) -> None:
    """Read the resource's allow policy (version 3: bindings may carry conditions), apply
    `edit` to its bindings, and write it back if that changed them (with the etag read, so a
    concurrent change fails rather than being lost)."""
    session = acc.session()
    policy = _rest(
        session,
        "POST",
        f"{resource_url}:getIamPolicy",
        f"{api}.getIamPolicy",
        json={"options": {"requestedPolicyVersion": 3}},
    )
    policy = policy or {}
    bindings = policy.setdefault("bindings", [])
    if not edit(bindings):
        return
    policy["bindings"] = [b for b in bindings if b.get("members")]
    policy["version"] = 3
    _rest(
        session,
        "POST",
        f"{resource_url}:setIamPolicy",
        f"{api}.setIamPolicy",
        json={"policy": policy},
    )
