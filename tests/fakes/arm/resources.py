"""Microsoft.Resources (subscriptions, resource groups), Microsoft.ManagedIdentity and
Microsoft.Authorization role assignments."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from .errors import ArmError, group_not_found
from .routing import Call, Reply, page
from .state import Operation, Resource, State

IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"


def subscription(s: State, call: Call) -> Reply:
    return Reply(
        200,
        {
            "id": f"/subscriptions/{s.subscription}",
            "subscriptionId": s.subscription,
            "tenantId": s.tenant,
            "displayName": "rayctl test subscription",
            "state": "Enabled",
        },
    )


def put_group(s: State, call: Call, group: str) -> Reply:
    existing = s.groups.get(group.lower())
    if existing and existing.properties["provisioningState"] == "Deleting":
        raise ArmError(
            409,
            "ResourceGroupBeingDeleted",
            f"The resource group '{group}' is in deprovisioning state and cannot perform this"
            " operation.",
        )
    found = Resource(
        id=existing.id if existing else s.group_id(group),
        type="Microsoft.Resources/resourceGroups",
        location=call.body.get("location", s.location),
        tags=call.body.get("tags", {}),
        properties={"provisioningState": "Succeeded"},
    )
    s.groups[group.lower()] = found
    return Reply(200 if existing else 201, found.resource())


def get_group(s: State, call: Call, group: str) -> Reply:
    return Reply(200, s.group(group).resource())


def list_groups(s: State, call: Call) -> Reply:
    """$filter=tagName eq 'K' and tagValue eq 'V', the one filter ARM takes here."""
    groups = [g for g in s.groups.values() if g.properties["provisioningState"] != "Deleting"]
    wanted = re.fullmatch(
        r"tagName eq '([^']*)'(?: and tagValue eq '([^']*)')?", call.query.get("$filter", "")
    )
    if wanted:
        key, value = wanted.groups()
        groups = [g for g in groups if key in g.tags and value in (None, g.tags[key])]
    return page(call, [g.resource() for g in groups], s.page_size)


def delete_group(s: State, call: Call, group: str, remove_all: Callable[[str], None]) -> Reply:
    """202 with only a Location to poll; everything inside goes, then the group."""
    found = s.groups.get(group.lower())
    if found is None:
        raise group_not_found(group)
    found.properties["provisioningState"] = "Deleting"

    def gone() -> None:
        remove_all(group)
        s.groups.pop(group.lower(), None)

    op = s.start_operation(gone)
    location = f"{call.base}/subscriptions/{s.subscription}/operationresults/{op.id}"
    location += f"?api-version={call.api_version}"
    return Reply(202, None, {"Location": location, "Retry-After": "0"})


def operation_result(op: Operation) -> Reply:
    """What a Location URL answers: 202 while running, 200 when done, the error if failed."""
    if op.status == "InProgress":
        return Reply(202, None, {"Retry-After": "0"})
    if op.status == "Failed" and op.failure:
        raise ArmError(409, op.failure.code, op.failure.message)
    return Reply(200, None)


def create_identity(s: State, call: Call, id_: str, existing: Resource | None) -> Reply:
    props = (
        existing.properties
        if existing
        else {
            "tenantId": s.tenant,
            "principalId": str(uuid.uuid4()),
            "clientId": str(uuid.uuid4()),
        }
    )
    found = Resource(
        id=existing.id if existing else id_,
        type=IDENTITY,
        location=call.body.get("location", s.location),
        tags=call.body.get("tags", {}),
        properties=props,
    )
    s.put(found)
    return Reply(200 if existing else 201, found.resource())


# -- role assignments at a scope: /{scope}/providers/Microsoft.Authorization/roleAssignments --

ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


def put_role_assignment(s: State, call: Call, scope: str, name: str) -> Reply:
    props = call.body.get("properties", {})
    for other in s.role_assignments.values():
        same = other.properties
        if (
            same["scope"].lower() == scope.lower()
            and same["roleDefinitionId"].lower() == props.get("roleDefinitionId", "").lower()
            and same["principalId"] == props.get("principalId")
            and other.name != name
        ):
            raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
    if not any(
        r.properties.get("principalId") == props.get("principalId")
        for r in s.resources.values()
        if r.type == IDENTITY
    ):
        raise ArmError(
            400,
            "PrincipalNotFound",
            f"Principal {props.get('principalId')} does not exist in the directory {s.tenant}.",
        )
    found = Resource(
        id=f"{scope}/providers/{ROLE_ASSIGNMENT}/{name}",
        type=ROLE_ASSIGNMENT,
        location=None,
        properties={
            "roleDefinitionId": props.get("roleDefinitionId"),
            "principalId": props.get("principalId"),
            "principalType": props.get("principalType", "ServicePrincipal"),
            "scope": scope,
        },
    )
    existed = name.lower() in s.role_assignments
    s.role_assignments[name.lower()] = found
    return Reply(200 if existed else 201, found.resource())


def get_role_assignment(s: State, call: Call, scope: str, name: str) -> Reply:
    found = s.role_assignments.get(name.lower())
    if found is None:
        raise ArmError(404, "RoleAssignmentNotFound", "The role assignment does not exist.")
    return Reply(200, found.resource())


def delete_role_assignment(s: State, call: Call, scope: str, name: str) -> Reply:
    found = s.role_assignments.pop(name.lower(), None)
    return Reply(200, found.resource()) if found else Reply(204)


def list_role_assignments(s: State, call: Call, scope: str) -> Reply:
    """atScope(): those at the scope or above it; principalId eq '...': that principal's."""
    wanted = re.search(r"principalId eq '([^']*)'", call.query.get("$filter", ""))
    found = [
        r.resource()
        for r in s.role_assignments.values()
        if scope.lower().startswith(r.properties["scope"].lower())
        and (wanted is None or r.properties["principalId"] == wanted.group(1))
    ]
    return page(call, found, s.page_size)
