"""Azure VMs through azure-mgmt-compute and azure-mgmt-network: each VM created directly
(a public IP when wanted, a NIC, the VM; no ARM template deployments), many at once in a
bounded thread pool, found again by their tags, reached over SSH.

Truth is in tags: the cluster's VMs, NICs and public IPs carry `rayctl-cluster` (and
rayctl's other tags on the VMs), so `down` from a machine with nothing but the config finds
all of them. A node's id is its VM's name, unique in the resource group.

Nodes are the cluster's VMs being created, starting or running. A deallocated VM is an
on-demand worker kept for reuse (cache_stopped_nodes): `create_nodes` starts those of the
same type and launch hash first; `cleanup` deletes the rest. A Spot VM is created with
evictionPolicy Delete: an evicted one is gone from the listing, and never tried over SSH.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from azure.mgmt.compute.models import (
    BillingProfile,
    HardwareProfile,
    ImageReference,
    LinuxConfiguration,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    OSProfile,
    SshConfiguration,
    SshPublicKey,
    StorageProfile,
    UserAssignedIdentitiesValue,
    VirtualMachine,
    VirtualMachineIdentity,
    VirtualMachineUpdate,
)
from azure.mgmt.network.models import (
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    PublicIPAddress,
    PublicIPAddressSku,
    Subnet,
)

from rayctl.config.schema import ClusterConfig
from rayctl.errors import CapacityError, ProviderError, TransientError
from rayctl.providers.azure import setup
from rayctl.providers.azure.config import AzureProviderConfig, arm_parameters, zone_list
from rayctl.providers.azure.errors import call
from rayctl.providers.base import Node, NodeKind, NodeState, RayStart, Tag, tagged
from rayctl.providers.cloud import await_address, create_reusing, reusable
from rayctl.providers.ssh_access import SSHAccess, connect_attempts_s, public_key_line
from rayctl.providers.ssh_access import key_path as ssh_key_path
from rayctl.runtime import head_paths
from rayctl.runtime.runner import CommandRunner
from rayctl.runtime.ssh_runner import SSHRunner

PARALLEL_CALLS = 16  # VM creates/deletes in flight at once
CONNECT_ATTEMPTS_S = 300.0
CONFIRM_TIMEOUT_S = 300.0
NIC_RESERVED_WAIT_S = 300.0  # Azure keeps a deleted VM's NIC reserved for ~180 s
NIC_RETRY_S = 10.0
_PENDING_POWER = ("starting", "creating")


@dataclasses.dataclass(frozen=True)
class _VM:
    """What rayctl reads of a VM (its addresses from the group's NIC listing)."""

    name: str
    provisioning: str  # Creating, Succeeded, Failed, Deleting, ...
    power: str  # running, starting, deallocated, stopped, ... ("" when not reported)
    tags: dict[str, str]
    spot: bool
    internal_ip: str
    external_ip: str | None
    created: float

    @property
    def state(self) -> NodeState | None:
        """The node's state; None when the VM is no node (failed, deleting, deallocated)."""
        if self.provisioning in ("Failed", "Deleting"):
            return None
        if self.power == "running" and self.provisioning == "Succeeded":
            return NodeState.RUNNING
        if self.provisioning in ("Creating", "Updating") or self.power in _PENDING_POWER:
            return NodeState.PENDING
        return None

    @property
    def deallocated(self) -> bool:
        return self.power in ("deallocated", "deallocating")


def _power(vm: Any) -> str:
    statuses = vm.instance_view.statuses if vm.instance_view else []
    codes = [s.code for s in statuses or [] if s.code and s.code.startswith("PowerState/")]
    return codes[0].split("/", 1)[1] if codes else ""


class AzureProvider:
    def __init__(
        self,
        config: ClusterConfig,
        *,
        home: Path,
        clients: Callable[[], setup.Clients] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert isinstance(config.provider, AzureProviderConfig)
        self.cluster_name = config.cluster_name
        self._config = config
        self._provider = config.provider
        self._home = home
        self._make_clients = clients or (lambda: setup.make_clients(self._provider))
        self._tag_lock = threading.Lock()
        self._sleep = sleep  # tests step a fake's clock instead of waiting
        self._access_ssh = SSHAccess(
            config,
            home=home,
            key_path=self.key_path,
            attempts_s=connect_attempts_s(CONNECT_ATTEMPTS_S),
        )

    # -- clients and names --------------------------------------------------------------

    @functools.cached_property
    def azure(self) -> setup.Clients:
        return self._make_clients()

    @property
    def group(self) -> str:
        return self._provider.resource_group

    @property
    def known_hosts(self) -> Path:
        return self._access_ssh.known_hosts

    @property
    def key_name(self) -> str:
        return f"rayctl-azure-{setup.slug(self.cluster_name)}"

    @property
    def key_path(self) -> Path:
        """The config's private key, or the one rayctl creates for the cluster."""
        return ssh_key_path(self._config, self._home, lambda: self.key_name)

    def _resource_id(self, kind: str, name: str, group: str | None = None) -> str:
        return f"{setup.group_scope(self.azure, group or self.group)}/providers/{kind}/{name}"

    @property
    def _subnet_id(self) -> str:
        names = setup.names(self.cluster_name)
        vnet = self._resource_id("Microsoft.Network/virtualNetworks", names["vnet"])
        return f"{vnet}/subnets/{names['subnet']}"

    @property
    def _identity_id(self) -> str:
        provider = self._provider
        if provider.msi_name and provider.msi_resource_group:
            name, group = provider.msi_name, provider.msi_resource_group
        else:
            name, group = setup.names(self.cluster_name)["msi"], self.group
        return setup.identity_id(self.azure, group, name)

    # -- listing ------------------------------------------------------------------------

    def _list(self) -> list[_VM]:
        """Every VM of the cluster in the group, whatever its state: one listing of the
        group's VMs (every page, with power states) and one of its NICs (and public IPs
        when they are used) for the addresses, however many VMs there are."""

        def fetch() -> list[_VM]:
            vms = [
                vm
                for vm in self.azure.compute.virtual_machines.list(
                    self.group, expand="instanceView"
                )
                if (vm.tags or {}).get(Tag.CLUSTER) == self.cluster_name
            ]
            if not vms:
                return []
            private, public_ids = self._addresses()
            public = self._public_ips() if public_ids else {}
            found = []
            for vm in vms:
                vm_id = str(vm.id).lower()
                found.append(
                    _VM(
                        name=vm.name,
                        provisioning=vm.provisioning_state or "",
                        power=_power(vm),
                        tags=dict(vm.tags or {}),
                        spot=vm.priority in ("Spot", "Low"),
                        internal_ip=private.get(vm_id, ""),
                        external_ip=public.get(public_ids.get(vm_id, "")),
                        created=vm.time_created.timestamp() if vm.time_created else 0.0,
                    )
                )
            return found

        found = call(fetch, f"list the VMs of resource group {self.group}", missing_ok=True)
        return found or []

    def _addresses(self) -> tuple[dict[str, str], dict[str, str]]:
        """VM id (lowercase) -> private address, and -> its public IP's id (lowercase)."""
        private: dict[str, str] = {}
        public: dict[str, str] = {}
        for nic in self.azure.network.network_interfaces.list(self.group):
            if nic.virtual_machine is None or not nic.ip_configurations:
                continue
            vm_id = str(nic.virtual_machine.id).lower()
            config = nic.ip_configurations[0]
            private[vm_id] = config.private_ip_address or ""
            if config.public_ip_address is not None:
                public[vm_id] = str(config.public_ip_address.id).lower()
        return private, public

    def _public_ips(self) -> dict[str, str | None]:
        return {
            str(ip.id).lower(): ip.ip_address
            for ip in self.azure.network.public_ip_addresses.list(self.group)
        }

    def _node(self, vm: _VM, state: NodeState | None = None) -> Node:
        state = state or vm.state
        assert state is not None
        return Node(
            id=vm.name,
            node_type=vm.tags.get(Tag.NODE_TYPE, ""),
            kind=NodeKind(vm.tags.get(Tag.KIND, NodeKind.WORKER.value)),
            state=state,
            internal_ip=vm.internal_ip,
            external_ip=vm.external_ip,
            tags=vm.tags,
            launched_at=vm.created,
        )

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(vm) for vm in self._list() if vm.state is not None]
        return tagged(nodes, tag_filters)

    # -- tags -----------------------------------------------------------------------------

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """Merge into the VM's tags (ARM's PATCH replaces them whole: read, merge, write,
        one writer at a time in this process). A VM that is gone has nothing to tag."""
        compute = self.azure.compute.virtual_machines
        with self._tag_lock:
            vm = call(
                lambda: compute.get(self.group, node_id),
                f"read VM {node_id}",
                missing_ok=True,
            )
            if vm is None:
                return
            merged = {**(vm.tags or {}), **tags}
            call(
                lambda: compute.begin_update(
                    self.group, node_id, VirtualMachineUpdate(tags=merged)
                ).result(),
                f"tag VM {node_id}",
                missing_ok=True,
            )

    # -- launching ------------------------------------------------------------------------

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        node_tags = {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type}
        return create_reusing(
            count,
            lambda n: self._restart_cached(n, node_tags),
            lambda n: self._launch(node_type, n, node_tags),
        )

    def _restart_cached(self, count: int, tags: Mapping[str, str]) -> list[Node]:
        """Start deallocated on-demand workers of the same type and launch hash."""
        match = reusable(self._provider.cache_stopped_nodes, tags)
        if match is None:
            return []
        cached = [
            vm
            for vm in self._list()
            if vm.deallocated and not vm.spot and all(vm.tags.get(k) == v for k, v in match.items())
        ]
        chosen = sorted(cached, key=lambda vm: vm.name)[:count]
        self._start([vm.name for vm in chosen])
        for vm in chosen:
            self.set_tags(vm.name, tags)
        names = {vm.name for vm in chosen}
        return [self._node(vm) for vm in self._list() if vm.name in names and vm.state]

    def _launch(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """`count` VMs created at once, zone by zone: what a zone cannot hold (allocation
        failed, size not offered) moves to the next zone, and its leftovers are deleted.
        CapacityError names every zone tried when none could hold any; other failures
        (quota, permissions) are raised unless some VMs were made, which are returned."""
        params = arm_parameters(self._config.available_node_types[node_type].node_config)
        zones: list[str | None] = [
            *zone_list(
                params.availability_zone
                if params.availability_zone is not None
                else self._provider.availability_zone
            )
        ] or [None]
        made: list[str] = []
        tried: list[str] = []
        left = count
        for zone in zones:
            names = [self._vm_name() for _ in range(left)]
            create = functools.partial(self._create_vm, node_type, zone=zone, tags=tags)
            results = self._each(names, create)
            errors = [e for e in results if e is not None]
            made += [n for n, e in zip(names, results, strict=True) if e is None]
            left = len(errors)
            if errors:
                where = f"zone {zone}" if zone else self._provider.location
                tried.append(f"{where}: {errors[0]}")
            other = [e for e in errors if not isinstance(e, CapacityError)]
            if other and not made:
                raise other[0]
            if left == 0 or other:
                break
        if not made:
            raise CapacityError(
                f"no capacity for {count} x {params.vmSize} ({node_type}) in "
                f"{', '.join(f'zone {z}' for z in zones if z) or self._provider.location}: "
                + "; ".join(tried)
            )
        wanted = set(made)
        return [self._node(vm) for vm in self._list() if vm.name in wanted and vm.state]

    def _vm_name(self) -> str:
        return f"rayctl-{setup.slug(self.cluster_name)[:30]}-{uuid.uuid4().hex[:8]}"

    def _create_vm(
        self, node_type: str, name: str, *, zone: str | None, tags: Mapping[str, str]
    ) -> ProviderError | None:
        """One VM with its NIC (and public IP); None when it runs, else the error, with
        what was made for it deleted."""
        try:
            self._create_vm_parts(node_type, name, zone, tags)
        except ProviderError as exc:
            self._delete_vm_parts(name)
            return exc
        return None

    def _create_vm_parts(
        self, node_type: str, name: str, zone: str | None, tags: Mapping[str, str]
    ) -> None:
        provider = self._provider
        node_config = self._config.available_node_types[node_type].node_config
        params = arm_parameters(node_config)
        head = NodeKind(tags[Tag.KIND]) is NodeKind.HEAD
        network = self.azure.network
        own = setup.cluster_tags(self.cluster_name)
        zones = [zone] if zone else None
        public_ip = None
        if not provider.use_internal_ips or (head and provider.use_external_head_ip):
            public_ip = call(
                lambda: network.public_ip_addresses.begin_create_or_update(
                    self.group,
                    f"{name}-ip",
                    PublicIPAddress(
                        location=provider.location,
                        tags=own,
                        zones=zones,
                        sku=PublicIPAddressSku(name="Standard"),
                        public_ip_allocation_method="Static",
                        delete_option="Delete",
                    ),
                ).result(),
                f"create the public IP of {name}",
            )
        nic = call(
            lambda: network.network_interfaces.begin_create_or_update(
                self.group,
                f"{name}-nic",
                NetworkInterface(
                    location=provider.location,
                    tags=own,
                    enable_accelerated_networking=params.enableAcceleratedNetworking,
                    ip_configurations=[
                        NetworkInterfaceIPConfiguration(
                            name="primary",
                            subnet=Subnet(id=self._subnet_id),
                            public_ip_address=public_ip,
                        )
                    ],
                ),
            ).result(),
            f"create the network interface of {name}",
        )
        assert nic is not None
        image = (
            ImageReference(id=params.imageId)
            if params.imageId
            else ImageReference(
                publisher=params.imagePublisher,
                offer=params.imageOffer,
                sku=params.imageSku,
                version=params.imageVersion,
            )
        )
        user = params.adminUsername or self._config.auth.ssh_user
        key = params.publicKey or self._public_key_line()
        vm = VirtualMachine(
            location=provider.location,
            tags={**node_config.get("tags", {}), **tags},
            zones=zones,
            hardware_profile=HardwareProfile(vm_size=params.vmSize),
            storage_profile=StorageProfile(
                image_reference=image,
                os_disk=OSDisk(
                    create_option="FromImage",
                    delete_option="Delete",
                    disk_size_gb=params.osDiskSize,
                ),
            ),
            os_profile=OSProfile(
                computer_name=name,
                admin_username=user,
                linux_configuration=LinuxConfiguration(
                    disable_password_authentication=True,
                    ssh=SshConfiguration(
                        public_keys=[
                            SshPublicKey(path=f"/home/{user}/.ssh/authorized_keys", key_data=key)
                        ]
                    ),
                ),
            ),
            network_profile=NetworkProfile(
                network_interfaces=[
                    NetworkInterfaceReference(id=nic.id, primary=True, delete_option="Delete")
                ]
            ),
            priority="Spot" if params.spot else None,
            eviction_policy="Delete" if params.spot else None,
            billing_profile=(
                BillingProfile(max_price=params.billingProfile.maxPrice)
                if params.spot and params.billingProfile
                else None
            ),
            identity=(
                VirtualMachineIdentity(
                    type="UserAssigned",
                    user_assigned_identities={self._identity_id: UserAssignedIdentitiesValue()},
                )
                if head
                else None
            ),
        )
        call(
            lambda: self.azure.compute.virtual_machines.begin_create_or_update(
                self.group, name, vm
            ).result(),
            f"create VM {name} ({params.vmSize}{f' in zone {zone}' if zone else ''})",
        )

    def _public_key_line(self) -> str:
        return public_key_line(
            self.key_path,
            create=not self._config.auth.ssh_private_key,
            comment=f"rayctl-{self.key_name}",
        )

    # -- terminating ------------------------------------------------------------------------

    def _each(self, items: Sequence[str], fn: Callable[[str], Any]) -> list[Any]:
        """`fn(item)` for each, PARALLEL_CALLS at a time; their results, in order."""
        if not items:
            return []
        with concurrent.futures.ThreadPoolExecutor(min(PARALLEL_CALLS, len(items))) as pool:
            return list(pool.map(fn, items))

    def _delete_vm_parts(self, name: str) -> None:
        """The VM (waited for), then its NIC (retried while Azure still reserves it for the
        deleted VM) and public IP: each already gone is fine."""
        compute = self.azure.compute.virtual_machines
        network = self.azure.network
        call(
            lambda: compute.begin_delete(self.group, name).result(),
            f"delete VM {name}",
            missing_ok=True,
        )
        waited = 0.0  # counted, not clocked: the calls themselves take little
        while True:
            try:
                call(
                    lambda: network.network_interfaces.begin_delete(
                        self.group, f"{name}-nic"
                    ).result(),
                    f"delete the network interface of {name}",
                    missing_ok=True,
                )
                break
            except ProviderError as exc:
                if "NicReservedForAnotherVm" not in str(exc):
                    raise
                if waited >= NIC_RESERVED_WAIT_S:
                    raise TransientError(
                        f"Azure still reserves network interface {name}-nic for a deleted VM "
                        f"after {waited:.0f} s; run `rayctl down` again in a few minutes"
                    ) from None
            self._sleep(NIC_RETRY_S)
            waited += NIC_RETRY_S
        call(
            lambda: network.public_ip_addresses.begin_delete(self.group, f"{name}-ip").result(),
            f"delete the public IP of {name}",
            missing_ok=True,
        )

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        """Delete, or with cache_stopped_nodes deallocate running on-demand workers (never
        Spot ones). When the head goes, everything given goes for good. Returns once Azure
        lists none of them as a node."""
        wanted = set(ids)
        found = [vm for vm in self._list() if vm.name in wanted]
        if not found:
            return
        kinds = {vm.tags.get(Tag.KIND) for vm in found}
        cache = self._provider.cache_stopped_nodes and NodeKind.HEAD.value not in kinds
        keep = [vm.name for vm in found if cache and not vm.spot and vm.state is not None]
        kept = [vm.name for vm in found if cache and not vm.spot and vm.deallocated]
        delete = [vm.name for vm in found if vm.name not in keep and vm.name not in kept]
        self._deallocate(keep)
        self._each(delete, self._delete_vm_parts)
        self._confirm(set(keep) | set(delete))

    def _deallocate(self, names: Sequence[str]) -> None:
        compute = self.azure.compute.virtual_machines
        self._each(
            names,
            lambda name: call(
                lambda: compute.begin_deallocate(self.group, name).result(),
                f"deallocate VM {name}",
                missing_ok=True,
            ),
        )

    def _start(self, names: Sequence[str]) -> None:
        compute = self.azure.compute.virtual_machines
        self._each(
            names,
            lambda name: call(
                lambda: compute.begin_start(self.group, name).result(), f"start VM {name}"
            ),
        )

    # -- StopsNodes (autostop without `down`): deallocated VMs ---------------------------------

    def stopped_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [
            self._node(vm, NodeState.STOPPED)
            for vm in self._list()
            if vm.deallocated and vm.provisioning not in ("Failed", "Deleting")
        ]
        return tagged(nodes, tag_filters)

    def stop_nodes(self, ids: Sequence[str]) -> None:
        wanted = set(ids)
        names = [vm.name for vm in self._list() if vm.name in wanted and vm.state]
        self._deallocate(names)
        self._confirm(set(names))

    def start_nodes(self, ids: Sequence[str]) -> list[Node]:
        wanted = set(ids)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while True:  # a VM still deallocating cannot start yet
            found = [vm for vm in self._list() if vm.name in wanted]
            busy = [vm.name for vm in found if vm.power == "deallocating"]
            if not busy:
                break
            if time.monotonic() > deadline:
                raise TransientError(
                    f"Azure still deallocates {', '.join(busy)} after {CONFIRM_TIMEOUT_S:.0f} s; "
                    "run `rayctl up` again"
                )
            self._sleep(2)
        self._start([vm.name for vm in found if vm.deallocated])
        return [self._node(vm) for vm in self._list() if vm.name in wanted and vm.state]

    def _confirm(self, names: set[str], timeout_s: float = CONFIRM_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while names:
            left = sorted(vm.name for vm in self._list() if vm.name in names and vm.state)
            if not left:
                return
            if time.monotonic() > deadline:
                raise TransientError(
                    f"Azure still lists {', '.join(left)} as running after {timeout_s:.0f} s; "
                    "run `rayctl down` again"
                )
            time.sleep(2)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Nothing is tracked here: the VMs' tags are the record."""

    # -- reaching nodes ----------------------------------------------------------------------

    def runner(self, node: Node) -> SSHRunner:
        return self._access_ssh.runner(node.id, self._address(node))

    def _address(self, node: Node) -> str:
        internal = self._provider.use_internal_ips and not (
            node.kind is NodeKind.HEAD and self._provider.use_external_head_ip
        )

        def lookup() -> tuple[str | None, bool] | None:
            found = [vm for vm in self._list() if vm.name == node.id and vm.state]
            if not found:
                return None  # evicted or deleted: never retried over SSH
            address = found[0].internal_ip if internal else found[0].external_ip
            return address, found[0].state is NodeState.RUNNING

        return await_address(
            node,
            internal=internal,
            lookup=lookup,
            missing="set provider.use_internal_ips: false to give VMs public IPs",
        )

    def ray_start_args(self, node: Node) -> RayStart:
        return self._access_ssh.cloud_ray_start_args(node)

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The head's monitor calls Azure as the head's managed identity (its client id in
        AZURE_CLIENT_ID, which DefaultAzureCredential reads); no credentials are copied. An
        endpoint and token given in the environment go along instead."""
        head_config = self._access_ssh.prepare_head(
            config, runner, created_key=head_paths.key_pair(self.key_name)
        )
        env = {k: os.environ[k] for k in setup.ENV_VARS if os.environ.get(k)}
        env["AZURE_SUBSCRIPTION_ID"] = self.azure.subscription
        if setup.TOKEN_ENV not in env:
            env["AZURE_CLIENT_ID"] = setup.identity_client_id(self.azure, self._identity_id)
        return head_config, env

    # -- bootstrap and cleanup ----------------------------------------------------------------

    def bootstrap(self) -> None:
        """Credentials and the subscription first (nothing is created when they fail), the
        SSH key, then the resource group, the network and the head's identity."""
        setup.check_access(self.azure)
        self._public_key_line()  # the cluster's key is made now when none is given
        self._access_ssh.check_key()
        sources = self._provider.ssh_source_cidrs
        setup.ensure_group(self.azure, self._provider, self.cluster_name)
        setup.ensure_network(self.azure, self._provider, self.cluster_name, list(sources or ["*"]))
        setup.ensure_identity(self.azure, self._provider, self.cluster_name)

    def cleanup(self) -> None:
        """Once no node is left: a group rayctl created goes whole; in a shared group, the
        cluster's deallocated and failed VMs, its leftover NICs and public IPs, the head's
        identity and role, the vnet and the NSG. Then the key rayctl made. Idempotent."""
        vms = self._list()
        live = [vm.name for vm in vms if vm.state is not None]
        if live:
            raise ProviderError(
                f"cluster {self.cluster_name} still has running VMs ({', '.join(live)}); "
                "run `rayctl down` to remove them first"
            )
        if setup.owns_group(self.azure, self.group, self.cluster_name):
            setup.delete_group(self.azure, self.group)
        else:
            self._each([vm.name for vm in vms], self._delete_vm_parts)
            self._delete_leftover_network()
            setup.delete_cluster_resources(self.azure, self._provider, self.cluster_name)
        if not self._config.auth.ssh_private_key:
            self.key_path.unlink(missing_ok=True)
        shutil.rmtree(self._access_ssh.state_dir, ignore_errors=True)

    def remove_from_head(self, head: Node) -> None:
        """Autostop with `down`, on the head once the workers are deleted. A group rayctl
        created goes whole, in one call not waited for (the head is in it; its identity's
        role on the group goes with the group). In a shared group: the other VMs (deallocated,
        failed) with their NICs and IPs, then the head's VM (not waited for: that shuts this
        machine down; its NIC goes with it), then its identity rayctl made, last: its
        credentials work until then. The head's public IP, the vnet and NSG (in use by its
        NIC until the VM is gone) and the role assignment (which the Contributor role may not
        delete) stay for the next `rayctl down`, as does whatever a head stopped midway
        leaves."""
        vms = self._list()
        others = [vm.name for vm in vms if vm.state is not None and vm.name != head.id]
        if others:
            raise ProviderError(
                f"cluster {self.cluster_name} still has running workers ({', '.join(others)})"
            )
        if setup.owns_group(self.azure, self.group, self.cluster_name):
            setup.delete_group(self.azure, self.group, wait=False)
            return
        self._each([vm.name for vm in vms if vm.name != head.id], self._delete_vm_parts)
        self._delete_leftover_network(keep=head.id)
        vm_client = self.azure.compute.virtual_machines
        call(
            lambda: vm_client.begin_delete(self.group, head.id, polling=False),
            f"delete VM {head.id}",
            missing_ok=True,
        )
        if not (self._provider.msi_name and self._provider.msi_resource_group):
            setup.delete_identity(self.azure, self._provider, self.cluster_name)

    def _delete_leftover_network(self, keep: str | None = None) -> None:
        """NICs and public IPs tagged with the cluster that no VM took with it (but those of
        VM `keep`)."""
        network = self.azure.network

        def tagged(items: Any) -> list[str]:
            return [i.name for i in items if (i.tags or {}).get(Tag.CLUSTER) == self.cluster_name]

        nics = call(
            lambda: tagged(network.network_interfaces.list(self.group)),
            f"list the network interfaces of {self.group}",
            missing_ok=True,
        )
        self._each(
            [n for n in (x.removesuffix("-nic") for x in nics or []) if n != keep],
            self._delete_vm_parts,
        )
        ips = call(
            lambda: tagged(network.public_ip_addresses.list(self.group)),
            f"list the public IPs of {self.group}",
            missing_ok=True,
        )
        self._each(
            [n for n in (x.removesuffix("-ip") for x in ips or []) if n != keep],
            self._delete_vm_parts,
        )
