"""The ARM fake driven by the real azure-mgmt clients: no client method is mocked, so what
passes here is what the SDKs accept from Azure's wire protocol."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.compute.models import (
    HardwareProfile,
    ImageReference,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    OSProfile,
    StorageProfile,
    VirtualMachine,
    VirtualMachineUpdate,
)
from azure.mgmt.msi.models import Identity
from azure.mgmt.network.models import (
    AddressSpace,
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    NetworkSecurityGroup,
    PublicIPAddress,
    SecurityRule,
    Subnet,
    VirtualNetwork,
)
from azure.mgmt.resource.resources.models import ResourceGroup

from tests.fakes.arm import ArmClients, ArmFake, arm_clients

GROUP = "rayctl-test"


class Clock:
    """The fake's clock, stepped by hand (NIC reservations)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[ArmFake]:
    with ArmFake(page_size=2) as fake:
        yield fake


@pytest.fixture
def arm(fake: ArmFake) -> ArmClients:
    return with_network(fake)


def with_network(fake: ArmFake, group: str = GROUP) -> ArmClients:
    arm = arm_clients(fake)
    arm.resources.resource_groups.create_or_update(group, ResourceGroup(location="eastus"))
    arm.network.virtual_networks.begin_create_or_update(
        group,
        "vnet",
        VirtualNetwork(
            location="eastus",
            address_space=AddressSpace(address_prefixes=["10.230.0.0/16"]),
            subnets=[Subnet(name="default", address_prefix="10.230.1.0/24")],
        ),
    ).result()
    return arm


def subnet_id(fake: ArmFake, group: str = GROUP) -> str:
    return (
        f"/subscriptions/{fake.subscription}/resourceGroups/{group}/providers"
        "/Microsoft.Network/virtualNetworks/vnet/subnets/default"
    )


def make_nic(arm: ArmClients, fake: ArmFake, name: str, group: str = GROUP) -> NetworkInterface:
    return arm.network.network_interfaces.begin_create_or_update(
        group,
        name,
        NetworkInterface(
            location="eastus",
            ip_configurations=[
                NetworkInterfaceIPConfiguration(
                    name="ipconfig1", subnet=Subnet(id=subnet_id(fake, group))
                )
            ],
        ),
    ).result()


def vm_model(
    nic: NetworkInterface, *, zone: str | None = None, delete: bool = True, **extra: object
) -> VirtualMachine:
    option = "Delete" if delete else "Detach"
    return VirtualMachine(
        location="eastus",
        zones=[zone] if zone else None,
        tags={"ray-cluster-name": "c1"},
        hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(
            image_reference=ImageReference(
                publisher="Canonical", offer="ubuntu-24_04-lts", sku="server", version="latest"
            ),
            os_disk=OSDisk(create_option="FromImage", delete_option=option),
        ),
        os_profile=OSProfile(computer_name="n", admin_username="ray"),
        network_profile=NetworkProfile(
            network_interfaces=[
                NetworkInterfaceReference(id=nic.id, primary=True, delete_option=option)
            ]
        ),
        **extra,
    )


def launch(arm: ArmClients, fake: ArmFake, name: str, **kw: object) -> VirtualMachine:
    nic = make_nic(arm, fake, f"{name}-nic")
    return arm.compute.virtual_machines.begin_create_or_update(
        GROUP, name, vm_model(nic, **kw)
    ).result()


def power_state(arm: ArmClients, name: str) -> str:
    vm = arm.compute.virtual_machines.get(GROUP, name, expand="instanceView")
    return next(s.code for s in vm.instance_view.statuses if s.code.startswith("PowerState/"))


def test_vm_create_is_long_running_and_lists_across_pages(fake: ArmFake, arm: ArmClients) -> None:
    for name in ("n1", "n2", "n3"):
        vm = launch(arm, fake, name, zone="2")
        assert vm.provisioning_state == "Succeeded"
        assert vm.zones == ["2"]
    assert fake.calls["AsyncOperation_Get"] >= 3  # each create was polled to its end
    assert sorted(vm.name for vm in arm.compute.virtual_machines.list(GROUP)) == ["n1", "n2", "n3"]
    assert fake.calls["VirtualMachines_List"] == 2  # page_size 2: the SDK followed nextLink
    assert power_state(arm, "n1") == "PowerState/running"
    vm = arm.compute.virtual_machines.get(GROUP, "n1")
    assert vm.instance_view is None  # only with $expand=instanceView
    assert vm.tags == {"ray-cluster-name": "c1"}
    assert vm.storage_profile.os_disk.managed_disk.id.endswith(vm.storage_profile.os_disk.name)


def test_paths_are_case_insensitive(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "n1")
    assert arm.compute.virtual_machines.get(GROUP.upper(), "N1").name == "n1"
    path = (
        f"/SUBSCRIPTIONS/{fake.subscription}/resourcegroups/{GROUP}/providers"
        "/microsoft.compute/VIRTUALMACHINES/n1?api-version=2024-07-01"
    )
    response = arm.compute.send_request(HttpRequest("GET", fake.endpoint + path))
    assert (response.status_code, response.json()["name"]) == (200, "n1")


def test_nic_addresses_come_from_the_pool_and_go_back(fake: ArmFake, arm: ArmClients) -> None:
    def address(nic: NetworkInterface) -> str:
        return nic.ip_configurations[0].private_ip_address

    assert address(make_nic(arm, fake, "a")) == "10.230.1.4"
    assert address(make_nic(arm, fake, "b")) == "10.230.1.5"
    arm.network.network_interfaces.begin_delete(GROUP, "a").result()
    assert address(make_nic(arm, fake, "c")) == "10.230.1.4"
    assert address(arm.network.network_interfaces.get(GROUP, "b")) == "10.230.1.5"
    assert sorted(n.name for n in arm.network.network_interfaces.list(GROUP)) == ["b", "c"]


def test_public_ips_are_documentation_addresses(fake: ArmFake, arm: ArmClients) -> None:
    ip = arm.network.public_ip_addresses.begin_create_or_update(
        GROUP, "pip", PublicIPAddress(location="eastus", public_ip_allocation_method="Static")
    ).result()
    assert ip.ip_address.startswith("203.0.113.")  # never to be contacted


def test_zonal_allocation_failure_fails_the_operation_and_another_zone_succeeds(
    fake: ArmFake, arm: ArmClients
) -> None:
    fake.allocation_failed("1")
    poller = arm.compute.virtual_machines.begin_create_or_update(
        GROUP, "n1", vm_model(make_nic(arm, fake, "nic1"), zone="1")
    )
    with pytest.raises(HttpResponseError) as failed:
        poller.result()
    assert failed.value.error.code == "ZonalAllocationFailed"
    assert launch(arm, fake, "n2", zone="2").provisioning_state == "Succeeded"


def test_sku_not_available_in_one_zone(fake: ArmFake, arm: ArmClients) -> None:
    fake.sku_not_available("Standard_D2s_v5", zone="3")
    with pytest.raises(HttpResponseError) as refused:
        launch(arm, fake, "n1", zone="3")
    assert (refused.value.status_code, refused.value.error.code) == (409, "SkuNotAvailable")
    assert launch(arm, fake, "n2", zone="1").provisioning_state == "Succeeded"


def test_quota_is_operation_not_allowed(fake: ArmFake, arm: ArmClients) -> None:
    fake.quota_exceeded()
    with pytest.raises(HttpResponseError) as refused:
        launch(arm, fake, "n1")
    assert refused.value.status_code == 409
    assert refused.value.error.code == "OperationNotAllowed"
    assert "quota" in refused.value.error.message
    assert launch(arm, fake, "n2").provisioning_state == "Succeeded"  # times=1


def test_429_is_retried_after_retry_after(fake: ArmFake, arm: ArmClients) -> None:
    fake.rate_limit(2, retry_after=1, operations={"ResourceGroups_Get"})
    assert arm.resources.resource_groups.get(GROUP).name == GROUP
    times = fake.call_times("ResourceGroups_Get")
    assert len(times) == 3  # two throttled, then served
    assert all(later - earlier >= 1 for earlier, later in itertools.pairwise(times))


def test_a_bad_token_is_401(fake: ArmFake) -> None:
    arm = arm_clients(fake, token="expired")
    with pytest.raises(ClientAuthenticationError) as refused:
        arm.resources.resource_groups.get(GROUP)
    assert refused.value.status_code == 401


def test_slow_operations_succeed_later(fake: ArmFake, arm: ArmClients) -> None:
    nic = make_nic(arm, fake, "nic1")
    fake.slow_operations(0.5)
    polls = fake.calls["AsyncOperation_Get"]
    poller = arm.compute.virtual_machines.begin_create_or_update(GROUP, "n1", vm_model(nic))
    assert poller.result().provisioning_state == "Succeeded"
    assert fake.calls["AsyncOperation_Get"] - polls >= 2  # InProgress first, then Succeeded


def test_deallocate_and_start(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "n1")
    arm.compute.virtual_machines.begin_deallocate(GROUP, "n1").result()
    assert power_state(arm, "n1") == "PowerState/deallocated"
    arm.compute.virtual_machines.begin_start(GROUP, "n1").result()
    assert power_state(arm, "n1") == "PowerState/running"


def test_tags_are_replaced_by_update(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "n1")
    arm.compute.virtual_machines.begin_update(
        GROUP, "n1", VirtualMachineUpdate(tags={"ray-node-status": "up-to-date"})
    ).result()
    assert arm.compute.virtual_machines.get(GROUP, "n1").tags == {"ray-node-status": "up-to-date"}


def test_vm_delete_takes_what_is_marked_delete(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "gone", delete=True)
    launch(arm, fake, "kept", delete=False)
    for name in ("gone", "kept"):
        arm.compute.virtual_machines.begin_delete(GROUP, name).result()
    assert [n.name for n in arm.network.network_interfaces.list(GROUP)] == ["kept-nic"]
    disks = list(arm.compute.disks.list_by_resource_group(GROUP))
    assert [d.name.split("_")[0] for d in disks] == ["kept"]
    assert disks[0].disk_state == "Unattached"


def test_a_nic_stays_reserved_after_its_vm_is_deleted() -> None:
    clock = Clock()
    with ArmFake(clock=clock, nic_reservation_seconds=180) as fake:
        arm = with_network(fake)
        launch(arm, fake, "n1", delete=False)
        arm.compute.virtual_machines.begin_delete(GROUP, "n1").result()
        clock.now += 179
        with pytest.raises(HttpResponseError) as reserved:
            arm.network.network_interfaces.begin_delete(GROUP, "n1-nic").result()
        assert (reserved.value.status_code, reserved.value.error.code) == (
            400,
            "NicReservedForAnotherVm",
        )
        clock.now += 1
        arm.network.network_interfaces.begin_delete(GROUP, "n1-nic").result()
        assert list(arm.network.network_interfaces.list(GROUP)) == []


def test_spot_eviction_with_delete_policy_removes_the_vm(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "spot", priority="Spot", eviction_policy="Delete")
    launch(arm, fake, "regular")
    fake.evict(GROUP, "spot")
    with pytest.raises(ResourceNotFoundError):
        arm.compute.virtual_machines.get(GROUP, "spot")
    assert [vm.name for vm in arm.compute.virtual_machines.list(GROUP)] == ["regular"]
    assert [n.name for n in arm.network.network_interfaces.list(GROUP)] == ["regular-nic"]


def test_deleting_a_group_deletes_everything_in_it(fake: ArmFake, arm: ArmClients) -> None:
    with_network(fake, "other")
    launch(arm, fake, "n1")
    kept = make_nic(arm, fake, "kept", group="other")
    identity = arm.msi.user_assigned_identities.create_or_update(
        GROUP, "head", Identity(location="eastus")
    )
    scope = f"/subscriptions/{fake.subscription}/resourceGroups/{GROUP}"
    arm.authorization.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=f"/subscriptions/{fake.subscription}/providers/Microsoft"
            ".Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
            principal_id=identity.principal_id,
        ),
    )
    arm.network.network_security_groups.begin_create_or_update(
        GROUP,
        "nsg",
        NetworkSecurityGroup(
            location="eastus",
            security_rules=[
                SecurityRule(
                    name="ssh",
                    protocol="Tcp",
                    access="Allow",
                    direction="Inbound",
                    priority=1000,
                    source_address_prefix="10.230.0.0/16",
                    source_port_range="*",
                    destination_address_prefix="*",
                    destination_port_range="22",
                )
            ],
        ),
    ).result()
    arm.resources.resource_groups.begin_delete(GROUP).result()
    with pytest.raises(ResourceNotFoundError):
        arm.resources.resource_groups.get(GROUP)
    assert not arm.resources.resource_groups.check_existence(GROUP)
    assert [g.name for g in arm.resources.resource_groups.list()] == ["other"]
    assert list(arm.authorization.role_assignments.list_for_scope(scope)) == []
    assert {r.group for r in fake.state.resources.values()} == {"other"}
    assert kept.ip_configurations[0].private_ip_address == "10.230.1.5"
    # n1's address went back to the pool with its NIC
    fresh = make_nic(arm, fake, "fresh", group="other")
    assert fresh.ip_configurations[0].private_ip_address == "10.230.1.4"


def test_groups_list_by_tag(fake: ArmFake) -> None:
    arm = arm_clients(fake)
    for i in range(3):
        tags = {"rayctl-cluster": "c1"} if i else {"rayctl-cluster": "c2"}
        arm.resources.resource_groups.create_or_update(
            f"g{i}", ResourceGroup(location="eastus", tags=tags)
        )
    found = arm.resources.resource_groups.list(
        filter="tagName eq 'rayctl-cluster' and tagValue eq 'c1'"
    )
    assert sorted(g.name for g in found) == ["g1", "g2"]


def test_role_assignments_at_a_scope(fake: ArmFake, arm: ArmClients) -> None:
    identity = arm.msi.user_assigned_identities.create_or_update(
        GROUP, "head", Identity(location="eastus")
    )
    scope = f"/subscriptions/{fake.subscription}/resourceGroups/{GROUP}"
    role = (
        f"/subscriptions/{fake.subscription}/providers/Microsoft.Authorization/roleDefinitions"
        "/9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
    )
    params = RoleAssignmentCreateParameters(
        role_definition_id=role, principal_id=identity.principal_id
    )
    name = str(uuid.uuid4())
    arm.authorization.role_assignments.create(scope, name, params)
    with pytest.raises(HttpResponseError) as twice:
        arm.authorization.role_assignments.create(scope, str(uuid.uuid4()), params)
    assert twice.value.error.code == "RoleAssignmentExists"
    found = list(arm.authorization.role_assignments.list_for_scope(scope))
    assert [(a.name, a.principal_id) for a in found] == [(name, identity.principal_id)]
    arm.authorization.role_assignments.delete(scope, name)
    assert list(arm.authorization.role_assignments.list_for_scope(scope)) == []


def test_parallel_creation_gives_every_vm_its_own_address(fake: ArmFake, arm: ArmClients) -> None:
    nics = [make_nic(arm, fake, f"w{i}-nic") for i in range(8)]
    pollers = [
        arm.compute.virtual_machines.begin_create_or_update(GROUP, f"w{i}", vm_model(nic))
        for i, nic in enumerate(nics)
    ]
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda p: p.result().provisioning_state, pollers))
    assert states == ["Succeeded"] * 8
    addresses = {
        n.ip_configurations[0].private_ip_address
        for n in arm.network.network_interfaces.list(GROUP)
    }
    assert addresses == {f"10.230.1.{i}" for i in range(4, 12)}


def test_an_attached_nic_cannot_be_deleted_or_reused(fake: ArmFake, arm: ArmClients) -> None:
    vm = launch(arm, fake, "n1")
    with pytest.raises(HttpResponseError) as in_use:
        arm.network.network_interfaces.begin_delete(GROUP, "n1-nic").result()
    assert (in_use.value.status_code, in_use.value.error.code) == (400, "NicInUse")
    other = vm_model(arm.network.network_interfaces.get(GROUP, "n1-nic"))
    with pytest.raises(HttpResponseError) as reused:
        arm.compute.virtual_machines.begin_create_or_update(GROUP, "n2", other).result()
    assert reused.value.error.code == "NicInUse"
    assert arm.network.network_interfaces.get(GROUP, "n1-nic").virtual_machine.id == vm.id


def test_spot_eviction_with_deallocate_policy_keeps_the_vm(fake: ArmFake, arm: ArmClients) -> None:
    launch(arm, fake, "spot", priority="Spot", eviction_policy="Deallocate")
    fake.evict(GROUP, "spot")
    assert power_state(arm, "spot") == "PowerState/deallocated"


def test_subnets_and_security_rules_as_children(fake: ArmFake, arm: ArmClients) -> None:
    arm.network.subnets.begin_create_or_update(
        GROUP, "vnet", "workers", Subnet(address_prefix="10.230.2.0/24")
    ).result()
    assert arm.network.subnets.get(GROUP, "vnet", "workers").address_prefix == "10.230.2.0/24"
    names = [s.name for s in arm.network.virtual_networks.get(GROUP, "vnet").subnets]
    assert names == ["default", "workers"]
    arm.network.network_security_groups.begin_create_or_update(
        GROUP, "nsg", NetworkSecurityGroup(location="eastus")
    ).result()
    rule = SecurityRule(
        protocol="Tcp",
        access="Allow",
        direction="Inbound",
        priority=1000,
        source_address_prefix="VirtualNetwork",
        source_port_range="*",
        destination_address_prefix="*",
        destination_port_range="*",
    )
    arm.network.security_rules.begin_create_or_update(GROUP, "nsg", "intra", rule).result()
    got = arm.network.network_security_groups.get(GROUP, "nsg").security_rules
    assert [(r.name, r.source_address_prefix) for r in got] == [("intra", "VirtualNetwork")]


def test_subscription_get_and_an_unknown_subscription(fake: ArmFake, arm: ArmClients) -> None:
    def get(subscription: str) -> HttpResponse:
        url = f"{fake.endpoint}/subscriptions/{subscription}?api-version=2022-12-01"
        return arm.resources.send_request(HttpRequest("GET", url))

    found = get(fake.subscription)
    assert (found.status_code, found.json()["state"]) == (200, "Enabled")
    missing = get("00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SubscriptionNotFound"
