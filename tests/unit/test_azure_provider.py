"""The azure provider against the ARM fake (tests/fakes/arm), through the real azure-mgmt
clients: bootstrap, parallel launches with zone failover, errors named before or instead of
partial state, paging, throttling, Spot eviction, cached workers and a `down` that leaves
nothing tagged with the cluster."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.resource.resources.models import ResourceGroup

from rayctl.errors import AuthError, CapacityError, QuotaError, TransientError
from rayctl.providers.azure import setup
from rayctl.providers.azure.instances import NIC_RESERVED_WAIT_S, NIC_RETRY_S, AzureProvider
from rayctl.providers.base import NodeKind, NodeState, Tag
from rayctl.providers.registry import load_config
from tests.fakes.arm import ArmFake
from tests.fakes.arm.clients import StaticToken
from tests.unit.test_arm_fake import Clock
from tests.unit.test_aws_provider import launch_tags

GROUP = "rayctl-test-rg"


@pytest.fixture
def fake() -> Iterator[ArmFake]:
    with ArmFake(page_size=2) as arm:
        yield arm


def provider(
    fake: ArmFake,
    tmp_path: Path,
    *,
    zone: str = '"1,2"',
    more: str = "",
    token: str | None = None,
    worker: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> AzureProvider:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            cluster_name: test
            provider:
              type: azure
              location: {fake.state.location}
              resource_group: {GROUP}
              subscription_id: {fake.subscription}
              availability_zone: {zone}
              ssh_source_cidrs: [198.51.100.0/24]
            {textwrap.indent(more, "  ")}
            available_node_types:
              ray.head.default:
                node_config:
                  azure_arm_parameters: {{vmSize: Standard_D2s_v3, imagePublisher: Canonical,
                    imageOffer: ubuntu-24_04-lts, imageSku: server}}
              worker:
                node_config:
                  azure_arm_parameters: {{vmSize: Standard_D4s_v3, imagePublisher: Canonical,
                    imageOffer: ubuntu-24_04-lts, imageSku: server{worker}}}
            """
        )
    )
    config = load_config(path).config

    def clients() -> setup.Clients:
        return setup.make_clients(
            config.provider,  # type: ignore[arg-type]
            StaticToken(token or fake.token),
            endpoint=fake.endpoint,
            polling_interval=0,
        )

    return AzureProvider(config, home=tmp_path / "home", clients=clients, sleep=sleep)


def tagged(fake: ArmFake) -> list[str]:
    """Every resource (and role assignment) left with the cluster's tag or in its group."""
    with fake.state.lock:
        return sorted(
            r.id.rsplit("/", 2)[-2] + "/" + r.id.rsplit("/", 1)[-1]
            for r in fake.state.resources.values()
            if (r.tags or {}).get(Tag.CLUSTER) == "test"
        )


def in_group(fake: ArmFake, type_: str) -> list[Any]:
    with fake.state.lock:
        if GROUP.lower() not in fake.state.groups:
            return []
        return list(fake.state.in_group(GROUP, type_))


VM = "Microsoft.Compute/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"
IP = "Microsoft.Network/publicIPAddresses"


# --- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_makes_an_owned_group_a_closed_network_and_a_scoped_identity(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    p.bootstrap()  # idempotent
    group = p.azure.resources.resource_groups.get(GROUP)
    assert group.tags == {Tag.CLUSTER: "test", setup.OWNER_TAG: "test"}
    nsg = p.azure.network.network_security_groups.get(GROUP, "rayctl-test-nsg")
    space = setup.address_space(p._provider, "test")
    rules = {
        (r.name, r.protocol, r.destination_port_range, tuple(r.source_address_prefixes or [])
         or r.source_address_prefix)
        for r in nsg.security_rules
    }  # fmt: skip
    assert rules == {
        ("rayctl-within-subnet", "*", "*", space),
        ("rayctl-ssh", "Tcp", "22", ("198.51.100.0/24",)),
    }
    vnet = p.azure.network.virtual_networks.get(GROUP, "rayctl-test-vnet")
    assert vnet.subnets[0].network_security_group.id.lower() == nsg.id.lower()
    identity = p.azure.msi.user_assigned_identities.get(GROUP, "rayctl-test-msi")
    scope = setup.group_scope(p.azure, GROUP)
    roles = list(p.azure.authorization.role_assignments.list_for_scope(scope))
    assert [(r.scope.lower(), r.principal_id) for r in roles] == [
        (scope.lower(), identity.principal_id)
    ]
    assert roles[0].role_definition_id.endswith(setup.CONTRIBUTOR)


def test_bad_credentials_are_named_before_anything_is_created(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path, token="not-the-token")
    with pytest.raises(AuthError, match=r"did not accept the credentials.*az login"):
        p.bootstrap()
    assert fake.state.groups == {} and tagged(fake) == []


def test_an_unknown_subscription_is_named(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    p.azure  # noqa: B018 (the clients, made now, for a subscription that is not there)
    object.__setattr__(p.azure, "subscription", "11111111-0000-0000-0000-000000000000")
    with pytest.raises(AuthError, match=r"subscription 11111111-.* is not there"):
        setup.check_access(p.azure)


# --- launching -----------------------------------------------------------------------------


def test_workers_are_created_in_parallel_with_their_parts_tagged(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    fake.slow_operations(1.0)
    nodes = p.create_nodes("worker", 4, launch_tags(NodeKind.WORKER))
    creates = fake.call_times("VirtualMachines_CreateOrUpdate")
    assert len(creates) == 4 and max(creates) - min(creates) < 1.0  # none waited for another
    assert len(nodes) == 4 and all(n.state is NodeState.RUNNING for n in nodes)
    assert all(n.internal_ip.startswith("10.230.1.") for n in nodes)
    assert {n.node_type for n in nodes} == {"worker"}
    vms = in_group(fake, VM)
    assert all(vm.zones == ["1"] for vm in vms)
    profile = vms[0].properties
    assert profile["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert profile["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] == (
        "Delete"
    )
    assert all(vm.identity is None for vm in vms)  # only the head holds the identity
    assert len([t for t in tagged(fake) if t.startswith("networkInterfaces/")]) == 4
    assert len([t for t in tagged(fake) if t.startswith("publicIPAddresses/")]) == 4


def test_internal_ips_mean_no_public_ip_and_the_head_gets_the_identity(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path, more="use_internal_ips: true")
    p.bootstrap()
    (head,) = p.create_nodes("ray.head.default", 1, launch_tags(NodeKind.HEAD))
    assert head.external_ip is None and head.internal_ip.startswith("10.230.1.")
    assert in_group(fake, IP) == []
    (vm,) = in_group(fake, VM)
    assert [k.rsplit("/", 1)[-1] for k in vm.identity["userAssignedIdentities"]] == [
        "rayctl-test-msi"
    ]


def test_a_zone_without_capacity_moves_the_launch_to_the_next(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    fake.allocation_failed("1")
    nodes = p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert len(nodes) == 2
    vms = in_group(fake, VM)
    assert sorted(vm.zones[0] for vm in vms) == ["2", "2"]  # the failed ones are deleted
    assert len(in_group(fake, NIC)) == 2 and len(in_group(fake, IP)) == 2


def test_no_capacity_anywhere_names_every_zone_and_leaves_nothing(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    fake.allocation_failed("1")
    fake.sku_not_available("Standard_D4s_v3", "2")
    with pytest.raises(CapacityError, match=r"zone 1, zone 2: zone 1: .*Zonal.*; zone 2: .*Sku"):
        p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert in_group(fake, VM) == [] and in_group(fake, NIC) == [] and in_group(fake, IP) == []


def test_a_node_types_zone_overrides_the_providers(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, worker=", availability_zone: '3'")
    p.bootstrap()
    p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert [vm.zones for vm in in_group(fake, VM)] == [["3"]]


def test_a_quota_error_is_a_quota_error_and_leaves_nothing(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    fake.quota_exceeded(times=None)
    with pytest.raises(QuotaError, match=r"Cores quota.*ask for more quota"):
        p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert in_group(fake, VM) == [] and in_group(fake, NIC) == [] and in_group(fake, IP) == []


class SleepingClock(Clock):
    """The fake's clock, stepped by the provider's waits (one thread waits at a time)."""

    def __init__(self) -> None:
        super().__init__()
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_a_nic_azure_still_reserves_after_a_failed_creation_is_deleted_once_free(
    tmp_path: Path,
) -> None:
    clock = SleepingClock()
    with ArmFake(clock=clock, nic_reservation_seconds=180) as fake:
        p = provider(fake, tmp_path, zone='"1"', sleep=clock.sleep)
        p.bootstrap()
        fake.allocation_failed("1")
        fake.reserve_nics()
        with pytest.raises(CapacityError):
            p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
        assert in_group(fake, VM) == [] and in_group(fake, NIC) == [] and in_group(fake, IP) == []
        # Retried every NIC_RETRY_S until the reservation ended, and no longer.
        assert 180 <= clock.slept < 180 + NIC_RETRY_S
        assert fake.calls["NetworkInterfaces_Delete"] == clock.slept / NIC_RETRY_S + 1


def test_a_nic_reserved_too_long_is_named_and_a_later_down_deletes_it(tmp_path: Path) -> None:
    clock = SleepingClock()
    with ArmFake(clock=clock, nic_reservation_seconds=NIC_RESERVED_WAIT_S * 2) as fake:
        more = "cache_stopped_nodes: false"
        p = provider(fake, tmp_path, zone='"1"', more=more, sleep=clock.sleep)
        p.bootstrap()
        (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
        fake.reserve_nics()
        with pytest.raises(TransientError, match=rf"{node.id}-nic .*run `rayctl down` again"):
            p.terminate_nodes([node.id])
        assert clock.slept == NIC_RESERVED_WAIT_S
        assert [n.name for n in in_group(fake, NIC)] == [f"{node.id}-nic"]
        clock.now += NIC_RESERVED_WAIT_S
        p.cleanup()
        assert tagged(fake) == [] and GROUP.lower() not in fake.state.groups


def test_throttling_is_waited_out_as_retry_after_says(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    fake.rate_limit(3, retry_after=0, operations=["VirtualMachines_List"])
    before = fake.calls["VirtualMachines_List"]
    assert p.list_nodes() == []
    assert fake.calls["VirtualMachines_List"] == before + 4  # 3 answered 429, then served


# --- listing -------------------------------------------------------------------------------


def test_listing_pages_and_costs_the_same_whatever_the_number_of_vms(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    p.create_nodes("worker", 5, launch_tags(NodeKind.WORKER))
    before = fake.calls.copy()
    nodes = p.list_nodes()
    assert len(nodes) == 5 and all(n.external_ip and n.internal_ip for n in nodes)
    calls = fake.calls - before
    # 5 VMs, NICs and IPs at 2 a page: 3 pages each, and no call per VM.
    assert calls == {
        "VirtualMachines_List": 3, "NetworkInterfaces_List": 3, "PublicIPAddresses_List": 3,
    }  # fmt: skip
    assert len(p.list_nodes(**{Tag.NODE_TYPE: "worker"})) == 5
    assert p.list_nodes(**{Tag.NODE_TYPE: "other"}) == []


def test_an_evicted_spot_vm_is_gone(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, worker=", priority: Spot")
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    (vm,) = in_group(fake, VM)
    assert (vm.properties["priority"], vm.properties["evictionPolicy"]) == ("Spot", "Delete")
    fake.evict(GROUP, node.id)
    assert p.list_nodes() == []
    p.set_tags(node.id, {"x": "y"})  # nothing to tag, no error


def test_set_tags_merges(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    p.set_tags(node.id, {Tag.STATUS: "ready"})
    (again,) = p.list_nodes()
    assert again.tags[Tag.STATUS] == "ready" and again.tags[Tag.LAUNCH_HASH] == "hash-1"


# --- terminating and down ------------------------------------------------------------------


def test_cached_workers_are_deallocated_and_started_again_never_spot(
    fake: ArmFake, tmp_path: Path
) -> None:
    p = provider(fake, tmp_path, more="cache_stopped_nodes: true")
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    p.terminate_nodes([node.id])
    assert p.list_nodes() == [] and len(in_group(fake, VM)) == 1
    (again,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert again.id == node.id and fake.calls["VirtualMachines_CreateOrUpdate"] == 1
    spot = provider(fake, tmp_path, more="cache_stopped_nodes: true", worker=", priority: Spot")
    (spot_node,) = spot.create_nodes("worker", 1, launch_tags(NodeKind.WORKER, "spot"))
    spot.terminate_nodes([spot_node.id])
    assert [vm.id.rsplit("/", 1)[-1] for vm in in_group(fake, VM)] == [node.id]


def test_stopped_vms_are_deallocated_keep_their_tags_and_start_again(
    fake: ArmFake, tmp_path: Path
) -> None:
    """What autostop without `down` leaves (ops.autostop deallocates the workers, then the
    head), what `up` starts again, and what `down` removes (the head among them)."""
    p = provider(fake, tmp_path)
    p.bootstrap()
    (head,) = p.create_nodes("ray.head.default", 1, launch_tags(NodeKind.HEAD))
    workers = sorted(n.id for n in p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER)))
    p.set_tags(head.id, {Tag.AUTOSTOPPED: "1000"})
    p.stop_nodes(workers)
    assert [n.id for n in p.list_nodes()] == [head.id]  # only those asked
    p.stop_nodes([head.id])
    assert p.list_nodes() == [] and len(in_group(fake, VM)) == 3
    stopped = {n.id: n for n in p.stopped_nodes()}
    assert sorted(stopped) == sorted([head.id, *workers])
    assert {n.state for n in stopped.values()} == {NodeState.STOPPED}
    assert stopped[head.id].tags[Tag.AUTOSTOPPED] == "1000"
    assert stopped[head.id].internal_ip == head.internal_ip
    assert [n.id for n in p.stopped_nodes(**{Tag.KIND: NodeKind.HEAD.value})] == [head.id]

    started = p.start_nodes([head.id, workers[0]])
    assert sorted(n.id for n in started) == sorted([head.id, workers[0]])
    assert sorted(n.id for n in p.list_nodes()) == sorted([head.id, workers[0]])
    assert [n.id for n in p.stopped_nodes()] == [workers[1]]

    p.stop_nodes([head.id, workers[0]])
    p.terminate_nodes([n.id for n in p.stopped_nodes()])  # `down` of a stopped cluster
    p.cleanup()
    assert fake.state.groups == {} and tagged(fake) == []


def test_down_deletes_the_group_rayctl_created(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, more="cache_stopped_nodes: true")
    p.bootstrap()
    head = p.create_nodes("ray.head.default", 1, launch_tags(NodeKind.HEAD))
    workers = p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    p.terminate_nodes([workers[0].id])  # deallocated, kept for reuse
    p.terminate_nodes([n.id for n in head + workers])
    p.cleanup()
    assert fake.state.groups == {} and tagged(fake) == []
    assert fake.state.role_assignments == {}
    p.cleanup()  # idempotent


def test_down_in_a_shared_group_removes_only_the_clusters(fake: ArmFake, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    p.azure.resources.resource_groups.create_or_update(
        GROUP, ResourceGroup(location=fake.state.location, tags={"team": "ml"})
    )
    p.bootstrap()
    nodes = p.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    p.terminate_nodes([n.id for n in nodes])  # deallocated (cache_stopped_nodes)
    assert p.list_nodes() == [] and len(in_group(fake, VM)) == 2
    p.cleanup()
    assert GROUP.lower() in fake.state.groups
    assert tagged(fake) == [] and fake.state.role_assignments == {}


def test_the_environment_points_a_provider_at_another_endpoint(
    fake: ArmFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the head's monitor finds the fake: an endpoint and a token in its environment."""
    p = provider(fake, tmp_path)
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    monkeypatch.setenv(setup.ENDPOINT_ENV, fake.endpoint)
    monkeypatch.setenv(setup.TOKEN_ENV, fake.token)
    on_head = AzureProvider(p._config, home=tmp_path / "head-home")
    assert [n.id for n in on_head.list_nodes()] == [node.id]
    monkeypatch.setenv(setup.TOKEN_ENV, "wrong")
    with pytest.raises(AuthError):
        AzureProvider(p._config, home=tmp_path / "head-home").list_nodes()
