"""Autostop with `down` on Azure, against the ARM fake in-process: the head's monitor removes its
own cluster (ops.down with by_monitor, as the monitor runs it, with the head's endpoint and
token from its environment). A group rayctl created goes in one call the head does not wait
for; in a shared group the other VMs go first, then the head's VM, and its identity last."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.mgmt.resource.resources.models import ResourceGroup

from rayctl.errors import ProviderError
from rayctl.ops.down import down
from rayctl.providers.azure import setup
from rayctl.providers.azure.instances import AzureProvider
from rayctl.providers.base import NodeKind
from rayctl.providers.registry import load_config
from tests.fakes.arm import ArmFake
from tests.unit.test_aws_provider import launch_tags
from tests.unit.test_azure_provider import (
    GROUP,
    IP,
    NIC,
    VM,
    fake,  # noqa: F401 (a fixture)
    in_group,
    provider,
    tagged,
)

HEAD = "ray.head.default"


def a_cluster(
    fake: ArmFake,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[AzureProvider, str]:
    """A bootstrapped cluster: a head, a running worker and a deallocated (cached) one; the
    environment points `down`'s own provider at the fake, as the head's is. The head's id."""
    p = provider(fake, tmp_path, more="cache_stopped_nodes: true")
    p.bootstrap()
    (head,) = p.create_nodes(HEAD, 1, launch_tags(NodeKind.HEAD))
    workers = p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    p.terminate_nodes([workers[0].id])  # deallocated, kept for reuse
    monkeypatch.setenv(setup.ENDPOINT_ENV, fake.endpoint)
    monkeypatch.setenv(setup.TOKEN_ENV, fake.token)
    return p, head.id


def removed_by_the_head(fake: ArmFake, tmp_path: Path) -> list[tuple[str, str]]:  # noqa: F811
    """`down` as the head's monitor runs it (a provider of its own): the calls it made."""
    start = len(fake.state.log)
    report = down(load_config(tmp_path / "cluster.yaml"), home=tmp_path / "head", by_monitor=True)
    assert {n.kind for n in report.removed} == {NodeKind.HEAD, NodeKind.WORKER}
    return fake.state.log[start:]


def test_the_head_deletes_the_group_rayctl_created_in_one_call_last(
    fake: ArmFake,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_cluster(fake, tmp_path, monkeypatch)
    seen = removed_by_the_head(fake, tmp_path)
    # Its last call: the group's deletion, not waited for (the head is in it).
    assert seen[-1][0] == "ResourceGroups_Delete"
    assert seen[-1][1].lower().endswith(f"/resourcegroups/{GROUP}".lower())
    assert [n for n, _ in seen].count("ResourceGroups_Delete") == 1
    # Everything goes with the group: the head, the deallocated worker, the identity, and
    # its role assignment on the group.
    with fake.state.lock:
        fake.state.advance()
    assert fake.state.groups == {} and tagged(fake) == [] and fake.state.role_assignments == {}


def test_in_a_shared_group_the_head_goes_after_the_others_and_its_identity_last(
    fake: ArmFake,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = provider(fake, tmp_path)
    p.azure.resources.resource_groups.create_or_update(
        GROUP, ResourceGroup(location=fake.state.location, tags={"team": "ml"})
    )
    _, head = a_cluster(fake, tmp_path, monkeypatch)
    seen = removed_by_the_head(fake, tmp_path)
    names = [n for n, _ in seen]
    assert "ResourceGroups_Delete" not in names
    own = [i for i, (n, path) in enumerate(seen) if n == "VirtualMachines_Delete" and
           path.endswith(f"/{head}")]  # fmt: skip
    assert len(own) == 1
    assert seen[-1][0] == "UserAssignedIdentities_Delete"
    others = [i for i, (n, path) in enumerate(seen[:-1]) if n.endswith("_Delete")]
    # The running worker's VM, the deallocated one's, then the head's.
    assert [seen[i][0] for i in others].count("VirtualMachines_Delete") == 3
    assert max(i for i in others if i != own[0]) < own[0] == len(seen) - 2
    # What the head cannot remove yet stays for `rayctl down`: the vnet and NSG its NIC is
    # in, its public IP, and its role assignment (Contributor may not delete one).
    with fake.state.lock:
        fake.state.advance()
    assert in_group(fake, VM) == [] and in_group(fake, NIC) == []
    assert [r.name for r in in_group(fake, IP)] == [f"{head}-ip"]
    assert len(fake.state.role_assignments) == 1

    assert down(load_config(tmp_path / "cluster.yaml"), home=tmp_path / "home").removed == []
    assert tagged(fake) == [] and fake.state.role_assignments == {}
    assert GROUP.lower() in fake.state.groups


def test_the_head_refuses_while_a_worker_runs(
    fake: ArmFake,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, _ = a_cluster(fake, tmp_path, monkeypatch)
    (head,) = p.list_nodes(**{"rayctl-kind": "head"})
    with pytest.raises(ProviderError, match="still has running workers"):
        p.remove_from_head(head)
    assert GROUP.lower() in fake.state.groups
