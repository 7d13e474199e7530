"""The Azure provider end to end: the ARM fake plays Azure Resource Manager (on a namespace
bridge) and every VM it runs is a real sshd host at its NIC's private IP, booted when the VM
appears, powered off while it is deallocated and removed when it goes (tests/azure_backing.py).

up -> bootstrap over SSH -> Ray on every VM's private IP -> submit -> the monitor on the
head (another process, on the head host) launches a worker through the fake for the demand
-> idle scale-down deletes it -> down deletes the resource group rayctl created. Autostop
without `down` deallocates the VMs and `up` resumes them. And a failed `up` (no zone can
hold the head, or no quota for it) in a shared resource group is cleaned by `down` resource
by resource, the group kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.resource.resources.models import ResourceGroup

from tests import cloud_backing as e2e
from tests.azure_backing import LOCATION, ZONES, BackedArm, backed_arm
from tests.conftest import kill_leftovers, unique_name
from tests.fakes.arm import arm_clients

pytestmark = pytest.mark.integration


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedArm]:
    yield from e2e.in_use(backed_arm(), monkeypatch)


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
    config = e2e.cluster_config(name, provider, node_config, arm.network.client_key)
    return name, group, e2e.write_cluster_config(config, tmp_path)


def test_azure_lifecycle(
    arm: BackedArm, cli, tmp_path: Path, rayctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, group, config = write_config(arm, tmp_path)
    try:
        _, first_id = e2e.up_with_a_worker(cli, arm, name, config, rayctl_home)
        assert "Microsoft.Network/publicIPAddresses" not in str(arm.leftovers(group))
        # The monitor on the head reaches the fake with the endpoint and token rayctl passed.
        creates = arm.fake.calls["VirtualMachines_CreateOrUpdate"]
        second_id = e2e.a_job_adds_a_worker(cli, arm, name, config, tmp_path, first_id)
        assert arm.fake.calls["VirtualMachines_CreateOrUpdate"] == creates + 1
        e2e.an_idle_worker_goes(arm, name, {first_id, second_id})

        e2e.down_from_a_fresh_machine(cli, config, arm.network.wrong_key, tmp_path, monkeypatch)
        assert arm.leftovers(group) == {}
        assert group.lower() not in arm.fake.state.groups  # rayctl made it: it went whole
        e2e.nothing_runs_after_down(arm, name)
    finally:
        if arm.leftovers(group):
            cli("down", config, "--yes")
        kill_leftovers(name)


def test_the_idle_head_deallocates_the_vms_and_up_resumes_them(
    arm: BackedArm, cli, tmp_path: Path, rayctl_home: Path
) -> None:
    name, group, config = write_config(arm, tmp_path)
    try:
        e2e.stopped_then_resumed(cli, arm, name, config, tmp_path, rayctl_home)
        assert arm.leftovers(group) == {}
        e2e.nothing_runs_after_down(arm, name)
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
