"""The Azure provider end to end: the ARM fake plays Azure Resource Manager (on a namespace
bridge) and every VM it runs is a real sshd host at its NIC's private IP, booted when the VM
appears and powered off when it goes (tests/azure_backing.py).

up -> bootstrap over SSH -> Ray on every VM's private IP -> submit -> the monitor on the
head (another process, on the head host) launches a worker through the fake for the demand
-> idle scale-down deletes it -> down deletes the resource group rayctl created. And a
failed `up` (no zone can hold the head, or no quota for it) in a shared resource group is
cleaned by `down` resource by resource, the group kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.resource.resources.models import ResourceGroup

from rayctl.providers.base import NodeKind
from tests.azure_backing import LOCATION, ZONES, BackedArm, backed_arm
from tests.cloud_backing import (
    check_ray_nodes,
    cluster_config,
    down_from_a_fresh_machine,
    write_cluster_config,
)
from tests.conftest import (
    SPREAD_JOB,
    cluster_pids,
    kill_leftovers,
    require_test_hosts,
    unique_name,
    wait_for,
)
from tests.fakes.arm import arm_clients
from tests.sshhosts import _inits_of

pytestmark = pytest.mark.integration


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedArm]:
    require_test_hosts()
    with backed_arm() as backed:
        for var, value in backed.env().items():
            monkeypatch.setenv(var, value)
        yield backed


def write_config(arm: BackedArm, tmp_path: Path) -> tuple[str, str, Path]:
    """A cluster in a resource group of its own: its name, the group's, the config."""
    name = unique_name("azure")
    image = {
        "imagePublisher": "Canonical",
        "imageOffer": "ubuntu-24_04-lts",
        "imageSku": "server",
        "imageVersion": "latest",
    }
    node_config = {"azure_arm_parameters": {"vmSize": "Standard_D2s_v5", **image}}
    group = f"rg-{name}"
    provider = {
        "type": "azure",
        "location": LOCATION,
        "resource_group": group,
        "subscription_id": arm.fake.subscription,
        "availability_zone": ",".join(ZONES),
        "ssh_source_cidrs": [f"{arm.network.gateway}/32"],
    }  # on internal IPs: the fake's public addresses are never made nor contacted
    config = cluster_config(name, provider, node_config, arm.network.client_key)
    return name, group, write_cluster_config(config, tmp_path)


def test_azure_lifecycle(
    arm: BackedArm, cli, tmp_path: Path, rayctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, group, config = write_config(arm, tmp_path)
    try:
        result = cli("up", config, "--yes")
        assert result.code == 0, (result.text, arm.errors)

        kinds = arm.cluster_vms(name)
        (head_id,) = kinds[NodeKind.HEAD.value]
        (first_id,) = kinds[NodeKind.WORKER.value]
        hosts = arm.hosts()
        head, first = hosts[head_id], hosts[first_id]
        assert head.address.startswith("10.230.1.") and first.address.startswith("10.230.1.")
        check_ray_nodes(cli, config, rayctl_home, {head_id: head, first_id: first})
        assert "Microsoft.Network/publicIPAddresses" not in str(arm.leftovers(group))

        # The job's second actor needs another worker: the monitor on the head launches it
        # through the fake, with the endpoint and token rayctl passed on to it.
        creates = arm.fake.calls["VirtualMachines_CreateOrUpdate"]
        job = tmp_path / "spread.py"
        job.write_text(SPREAD_JOB)
        submitted = cli("submit", config, job)
        assert submitted.code == 0, submitted.text
        (second_id,) = set(arm.cluster_vms(name)[NodeKind.WORKER.value]) - {first_id}
        assert arm.fake.calls["VirtualMachines_CreateOrUpdate"] == creates + 1
        second_host = arm.hosts()[second_id]
        assert f"hosts: {sorted([first.name, second_host.name])}" in submitted.out

        # Idle: back to min_workers; the idle worker's VM is deleted, its host gone.
        wait_for(
            lambda: len(arm.cluster_vms(name).get(NodeKind.WORKER.value, [])) == 1,
            90,
            "the idle worker to be deleted",
        )
        (gone,) = {first_id, second_id} - set(arm.cluster_vms(name)[NodeKind.WORKER.value])
        wait_for(lambda: gone not in arm.hosts(), 10, "the idle worker's host to go")

        down_from_a_fresh_machine(cli, config, arm.network.wrong_key, tmp_path, monkeypatch)
        assert arm.leftovers(group) == {}
        assert group.lower() not in arm.fake.state.groups  # rayctl made it: it went whole
        wait_for(lambda: not arm.network.hosts, 10, "every host to go")
        wait_for(
            lambda: not list(_inits_of(arm.network.dir)) and not cluster_pids(name),
            15,
            "every process to go",
        )
        assert arm.errors == []
    finally:
        if arm.leftovers(group):
            cli("down", config, "--yes")
        kill_leftovers(name)


@pytest.mark.parametrize("failure", ["no capacity in any zone", "no quota"])
def test_failed_up_in_a_shared_group_is_cleaned_by_down(
    arm: BackedArm, cli, tmp_path: Path, failure: str
) -> None:
    _, group, config = write_config(arm, tmp_path)
    arm_clients(arm.fake).resources.resource_groups.create_or_update(
        group, ResourceGroup(location=LOCATION, tags={"team": "ml"})
    )
    if failure == "no quota":
        arm.fake.quota_exceeded(times=None)
        named = "quota"
    else:
        for zone in ZONES:
            arm.fake.allocation_failed(zone)
        named = "zone 3"
    try:
        result = cli("up", config, "--yes")
        assert result.code != 0, result.text
        assert named in result.err and "Traceback" not in result.err, result.err
        assert arm.leftovers(group) != {}  # the network and the head's identity were made

        down = cli("down", config, "--yes")
        assert down.code == 0, down.text
        assert arm.leftovers(group) == {}
        assert arm.fake.state.groups[group.lower()].tags == {"team": "ml"}  # not rayctl's
        assert arm.ever_booted == {} and not arm.network.hosts
    finally:
        if arm.leftovers(group):
            cli("down", config, "--yes")
