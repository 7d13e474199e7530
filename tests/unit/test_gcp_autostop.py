"""Autostop with `down` on GCP, against the GCE fake in-process: the head's monitor removes its
own cluster (ops.down with by_monitor, as the monitor runs it) in the order a head can: the
stopped instances and the disks first, the firewall rules by name, then its own instance, and
the service account it runs as last, with roles scoped to the cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rayctl.config.loader import LoadedConfig
from rayctl.errors import AuthError
from rayctl.ops.down import down
from rayctl.providers.base import NodeKind, Tag
from rayctl.providers.gcp import setup as gcp_setup
from rayctl.providers.gcp.instances import GCPProvider
from rayctl.providers.registry import load_config, make_provider
from tests.conftest import wait_for
from tests.fakes.gce import ApiError, GceFake
from tests.gce_backing import leftovers
from tests.unit.test_gcp_provider import (
    HEAD,
    WORKER,
    gce,  # noqa: F401 (a fixture)
    launch_tags,
    write_config,
)

PROJECT = "test-project"


def a_cluster(tmp_path: Path) -> tuple[GCPProvider, LoadedConfig, str]:
    """A bootstrapped cluster: a head, two running workers and a stopped (cached) one; the
    workers' disks outlive them (autoDelete false). Returns the head's id."""
    loaded = load_config(write_config(tmp_path))
    provider = make_provider(loaded.config, home=tmp_path / "home")
    assert isinstance(provider, GCPProvider)
    provider.bootstrap()
    (head,) = provider.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    workers = provider.create_nodes(WORKER, 3, launch_tags(NodeKind.WORKER))
    provider.terminate_nodes([workers[0].id])  # cached: stopped, not a node
    return provider, loaded, head.id


def test_the_head_removes_its_cluster_and_its_own_account_last(
    gce: GceFake,  # noqa: F811
    tmp_path: Path,
) -> None:
    provider, loaded, head = a_cluster(tmp_path)
    email = gcp_setup.service_account_email("test", PROJECT)
    start = len(gce.state.log)
    gce.slow_operations(0.5)  # deletions take a while, as on GCE

    # `down` as the head's monitor runs it: a provider of its own, not bootstrapped.
    report = down(loaded, home=tmp_path / "head-home", by_monitor=True)

    assert {n.kind for n in report.removed} == {NodeKind.HEAD, NodeKind.WORKER}
    seen = gce.state.log[start:]
    names = [name for name, _ in seen]
    # Its own instance is the last compute call, after the rules and disks; the account it
    # runs as is deleted after it, the last call of all.
    assert seen[-1] == (
        "iam.projects.serviceAccounts.delete",
        {"project": PROJECT, "email": email},
    )
    last_compute = max(i for i, n in enumerate(names) if n.startswith("compute."))
    assert seen[last_compute][0] == "compute.instances.delete"
    assert seen[last_compute][1]["instance"] == head
    assert max(i for i, n in enumerate(names) if n == "compute.firewalls.delete") < last_compute
    assert max(i for i, n in enumerate(names) if n == "compute.disks.delete") < last_compute
    # Nothing its roles do not give it: no project policy, no listing of the project's rules,
    # and only rules its firewall role's condition names.
    assert not [n for n in names if "IamPolicy" in n or n == "compute.firewalls.list"], names
    prefix = f"{gcp_setup.network_tag('test')}-"
    deleted = [path["firewall"] for name, path in seen if name == "compute.firewalls.delete"]
    assert sorted(deleted) == sorted(gcp_setup.firewall_names("test"))
    assert all(rule.startswith(prefix) for rule in deleted)
    # The head's instance goes (not awaited by the head), with its boot disk. Then all is
    # gone but the account's roles on the project, which the head may not edit: inert
    # `deleted:` members now, which IAM drops by itself (and `rayctl down` at once).
    assert [i.status for i in provider._list()] == ["STOPPING"]
    wait_for(lambda: provider._list() == [], 5, "the head's instance to go")
    left = leftovers(gce, "test")
    assert set(left) == {"bindings"}, left
    assert all(" deleted:serviceAccount:" in b for b in left["bindings"]), left


def test_the_heads_roles_are_scoped_to_the_cluster(
    gce: GceFake,  # noqa: F811
    tmp_path: Path,
) -> None:
    a_cluster(tmp_path)
    email = gcp_setup.service_account_email("test", PROJECT)
    member = f"serviceAccount:{email}"
    project_roles = {
        role: condition
        for (role, condition), members in gce.state.policy.bindings.items()
        if member in members
    }
    rules = f"projects/{PROJECT}/global/firewalls/{gcp_setup.network_tag('test')}-"
    network = f"projects/{PROJECT}/global/networks/default"
    assert {r for r, c in project_roles.items() if not c} == set(gcp_setup.HEAD_ROLES)
    condition = project_roles[gcp_setup.FIREWALL_ROLE]
    assert json.loads(condition)["expression"] == (
        f'resource.name.startsWith("{rules}") || resource.name == "{network}"'
    )
    # Its own account is the only one it may delete: a role on that account, not the project.
    assert gcp_setup.OWN_ACCOUNT_ROLE not in project_roles
    own = gce.state.account_policies[email].bindings
    assert own == {(gcp_setup.OWN_ACCOUNT_ROLE, ""): {member}}


def test_what_a_head_stopped_midway_leaves_down_removes(
    gce: GceFake,  # noqa: F811
    tmp_path: Path,
) -> None:
    provider, loaded, _ = a_cluster(tmp_path)
    # The head's machine went down before its account's deletion got through.
    gce.fail(
        "iam.projects.serviceAccounts.delete",
        ApiError(401, "Request had invalid authentication credentials.", "authError"),
    )
    with pytest.raises(AuthError):
        down(loaded, home=tmp_path / "head-home", by_monitor=True)
    gce.state.advance()
    left = leftovers(gce, "test")
    assert set(left) == {"service accounts", "bindings"}, left
    assert not any("deleted:" in b for b in left["bindings"])

    assert down(loaded, home=tmp_path / "home").removed == []  # from the laptop
    assert leftovers(gce, "test") == {}
    assert provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value}) == []


def test_down_removes_the_roles_a_deleted_account_left(
    gce: GceFake,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, loaded, _ = a_cluster(tmp_path)
    down(loaded, home=tmp_path / "head-home", by_monitor=True)
    assert set(leftovers(gce, "test")) == {"bindings"}

    down(loaded, home=tmp_path / "home")
    assert leftovers(gce, "test") == {}
