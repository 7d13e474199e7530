"""The project and its identities: compute.projects.get, Resource Manager's
testIamPermissions / getIamPolicy / setIamPolicy (v1 and v3 paths; bindings may carry IAM
conditions), and IAM's service accounts (create, get, list, delete, and each account's own
getIamPolicy / setIamPolicy). A deleted account's project bindings stay, as `deleted:` members."""

from __future__ import annotations

import re

from .errors import already_exists, invalid, not_found
from .records import COMPUTE, ServiceAccount, fingerprint
from .routing import Call, Route
from .state import Policy, State

_ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])")
PROJECT_NUMBER = "123456789012"


def project_get(s: State, call: Call, project: str) -> dict:
    return {
        "kind": "compute#project",
        "id": PROJECT_NUMBER,
        "name": s.project,
        "commonInstanceMetadata": {
            "kind": "compute#metadata",
            "fingerprint": fingerprint([]),
            "items": [],
        },
        "defaultServiceAccount": f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
        "selfLink": f"{COMPUTE}projects/{s.project}",
        "quotas": [],
    }


def check_permissions(s: State, call: Call, project: str) -> dict:
    asked = call.body.get("permissions", [])
    granted = [p for p in asked if s.granted_permissions is None or p in s.granted_permissions]
    return {"permissions": granted} if granted else {}  # proto3 JSON omits an empty list


def get_iam_policy(s: State, call: Call, project: str) -> dict:
    return s.policy.resource()


def set_iam_policy(s: State, call: Call, project: str) -> dict:
    s.policy.replace(call.body.get("policy", {}))
    return s.policy.resource()


def _account(s: State, email: str) -> ServiceAccount:
    try:
        return s.service_accounts[email]
    except KeyError:
        raise not_found(f"projects/{s.project}/serviceAccounts/{email}") from None


def account_create(s: State, call: Call, project: str) -> dict:
    account_id = call.body.get("accountId", "")
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise invalid(
            f"Invalid account ID '{account_id}': 6 to 30 lowercase letters, digits or "
            "hyphens, starting with a letter and not ending with a hyphen."
        )
    given = call.body.get("serviceAccount", {})
    account = ServiceAccount(
        project=s.project,
        account_id=account_id,
        unique_id=s.new_id()[:21],
        display_name=given.get("displayName", ""),
        description=given.get("description", ""),
    )
    if account.email in s.service_accounts:
        raise already_exists(f"projects/{s.project}/serviceAccounts/{account.email}")
    s.service_accounts[account.email] = account
    return account.resource()


def account_get(s: State, call: Call, project: str, email: str) -> dict:
    return _account(s, email).resource()


def account_list(s: State, call: Call, project: str) -> dict:
    accounts = [s.service_accounts[e].resource() for e in sorted(s.service_accounts)]
    return {"accounts": accounts} if accounts else {}


def account_delete(s: State, call: Call, project: str, email: str) -> dict:
    account = _account(s, email)
    del s.service_accounts[email]
    s.account_policies.pop(email, None)
    s.policy.member_deleted(f"serviceAccount:{email}", account.unique_id)
    return {}


def account_get_iam_policy(s: State, call: Call, project: str, email: str) -> dict:
    _account(s, email)
    return s.account_policies.get(email, Policy()).resource()


def account_set_iam_policy(s: State, call: Call, project: str, email: str) -> dict:
    _account(s, email)
    policy = s.account_policies.setdefault(email, Policy())
    policy.replace(call.body.get("policy", {}))
    return policy.resource()


_CRM = "cloudresourcemanager.projects"
_ACCOUNTS = "/v1/projects/<project>/serviceAccounts"
_IAM_ACCOUNTS = "iam.projects.serviceAccounts"
ROUTES = [
    Route("GET", "/compute/v1/projects/<project>", "compute.projects.get", project_get),
    *(
        Route("POST", f"/{v}/projects/<project>:{verb}", f"{_CRM}.{verb}", handler)
        for v in ("v1", "v3")
        for verb, handler in (
            ("testIamPermissions", check_permissions),
            ("getIamPolicy", get_iam_policy),
            ("setIamPolicy", set_iam_policy),
        )
    ),
    Route("POST", _ACCOUNTS, "iam.projects.serviceAccounts.create", account_create),
    Route("GET", _ACCOUNTS, "iam.projects.serviceAccounts.list", account_list),
    Route("GET", f"{_ACCOUNTS}/<email>", "iam.projects.serviceAccounts.get", account_get),
    Route("DELETE", f"{_ACCOUNTS}/<email>", "iam.projects.serviceAccounts.delete", account_delete),
    *(
        Route("POST", f"{_ACCOUNTS}/<email>:{verb}", f"{_IAM_ACCOUNTS}.{verb}", handler)
        for verb, handler in (
            ("getIamPolicy", account_get_iam_policy),
            ("setIamPolicy", account_set_iam_policy),
        )
    ),
]
