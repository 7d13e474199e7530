"""Microsoft.Compute: virtual machines (with their OS disks) and disks."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from . import network
from .errors import ArmError, OperationFailure, invalid, sku_not_available
from .routing import Call, Reply, lro
from .state import Resource, State, now

VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
PROVIDER = "Microsoft.Compute"


def create_vm(s: State, call: Call, id_: str, existing: Resource | None) -> Reply:
    if existing:  # an update of a running VM: tags and the like; the hardware stays
        existing.tags = call.body.get("tags", existing.tags)
        return lro(s, call, s.start_operation(), PROVIDER, 200, _vm_body(s, existing, call))
    props = call.body.get("properties", {})
    size = props.get("hardwareProfile", {}).get("vmSize")
    if not size:
        raise invalid("Required parameter 'hardwareProfile.vmSize' is missing (null).")
    zones = call.body.get("zones") or None
    zone = zones[0] if zones else None
    if zone is not None and zone not in s.zones:
        raise invalid(
            f"The zone(s) '{zone}' for resource '{id_}' is not supported. The supported zones"
            f" for location '{s.location}' are '{','.join(s.zones)}'"
        )
    nic_refs = props.get("networkProfile", {}).get("networkInterfaces", [])
    if not nic_refs:
        raise invalid("Required parameter 'networkProfile' is missing (null).")
    nics = [network.nic_for_vm(s, ref["id"], id_) for ref in nic_refs]
    if (zone, size) in s.unavailable or (None, size) in s.unavailable:
        raise sku_not_available(size, s.location, zone)
    error = s.faults.take("VirtualMachines_CreateOrUpdate", zone, ArmError)
    if error:
        raise error
    failure = s.faults.take("VirtualMachines_CreateOrUpdate", zone, OperationFailure)

    os_disk = dict(props.get("storageProfile", {}).get("osDisk", {}))
    disk_name = os_disk.get("name") or f"{id_.rsplit('/', 1)[1]}_OsDisk_1_{uuid.uuid4().hex}"
    disk_id = f"{s.group_id(id_.split('/')[4])}/providers/{DISK}/{disk_name}"
    os_disk |= {
        "name": disk_name,
        "osType": "Linux",
        "createOption": os_disk.get("createOption", "FromImage"),
        "deleteOption": os_disk.get("deleteOption", "Detach"),
        "diskSizeGB": os_disk.get("diskSizeGB", 30),
        "managedDisk": {**os_disk.get("managedDisk", {}), "id": disk_id},
    }
    os_profile = {k: v for k, v in props.get("osProfile", {}).items() if k != "adminPassword"}
    vm = Resource(
        id=id_,
        type=VM,
        location=call.body.get("location", s.location),
        tags=call.body.get("tags", {}),
        zones=zones,
        identity=_identity(s, call.body.get("identity")),
        properties={
            **props,
            "osProfile": os_profile,
            "storageProfile": {**props.get("storageProfile", {}), "osDisk": os_disk},
            "vmId": str(uuid.uuid4()),
            "provisioningState": "Creating",
            "timeCreated": now(),
            "powerState": "starting",  # the fake's own; shown through instanceView only
        },
    )
    s.put(vm)
    for nic in nics:
        nic.properties["virtualMachine"] = {"id": id_}

    def created() -> None:
        vm.properties["provisioningState"] = "Succeeded"
        vm.properties["powerState"] = "running"
        s.put(
            Resource(
                id=disk_id,
                type=DISK,
                location=vm.location,
                zones=zones,
                tags={},
                properties={
                    "diskSizeGB": os_disk["diskSizeGB"],
                    "diskState": "Attached",
                    "provisioningState": "Succeeded",
                    "timeCreated": now(),
                    "osType": "Linux",
                    "managedBy": id_,
                },
            )
        )

    op = s.start_operation(created, failure)
    if failure:  # a VM that failed to allocate stays, Failed, until deleted (as in Azure)
        vm.properties["provisioningState"] = "Failed"
        vm.properties["powerState"] = "stopped"
    return lro(s, call, op, PROVIDER, 201, _vm_body(s, vm, call))


def _identity(s: State, identity: dict | None) -> dict | None:
    if not identity:
        return None
    assigned = {}
    for ident_id in identity.get("userAssignedIdentities", {}):
        found = s.get(ident_id)
        assigned[found.id] = {
            "principalId": found.properties["principalId"],
            "clientId": found.properties["clientId"],
        }
    return {"type": identity.get("type", "UserAssigned"), "userAssignedIdentities": assigned}


def _vm_body(s: State, vm: Resource, call: Call) -> dict:
    body = vm.resource()
    props = {k: v for k, v in vm.properties.items() if k != "powerState"}
    if call.query.get("$expand", "").lower() == "instanceview":
        state = vm.properties["provisioningState"]
        power = vm.properties["powerState"]
        props["instanceView"] = {
            "statuses": [
                {"code": f"ProvisioningState/{state.lower()}", "level": "Info"},
                {"code": f"PowerState/{power}", "level": "Info"},
            ]
        }
    return body | {"properties": props}


def get_vm(s: State, call: Call, vm: Resource) -> Reply:
    return Reply(200, _vm_body(s, vm, call))


class NicsKept:
    """A fault on VirtualMachines_Delete: the VM's NICs stay behind (ArmFake.reserve_nics)."""


def delete_vm(s: State, call: Call, vm: Resource) -> Reply:
    keep_nics = s.faults.take("VirtualMachines_Delete", None, NicsKept) is not None
    vm.properties["provisioningState"] = "Deleting"
    op = s.start_operation(lambda: remove_vm(s, vm, keep_nics=keep_nics))
    return lro(s, call, op, PROVIDER, 202, None)


def remove_vm(s: State, vm: Resource, *, keep_nics: bool = False) -> None:
    """The VM goes; its OS disk and NICs go with it when their deleteOption says Delete
    (NICs not with `keep_nics`), and a NIC left behind stays reserved for a while
    (NicReservedForAnotherVm)."""
    s.remove(vm.id)
    os_disk = vm.properties["storageProfile"]["osDisk"]
    disk = s.find(os_disk["managedDisk"]["id"])
    if disk and os_disk["deleteOption"] == "Delete":
        s.remove(disk.id)
    elif disk:
        disk.properties.pop("managedBy", None)
        disk.properties["diskState"] = "Unattached"
    for ref in vm.properties["networkProfile"]["networkInterfaces"]:
        nic = s.find(ref["id"])
        if nic is None:
            continue
        if ref.get("properties", {}).get("deleteOption") == "Delete" and not keep_nics:
            network.remove_nic(s, nic)
        else:
            nic.properties.pop("virtualMachine", None)
            s.reserved_nics[nic.id.lower()] = (s.clock() + s.nic_reservation_seconds, vm.id)


def power(state: str, final: str) -> Callable[[State, Call, Resource], Reply]:
    """deallocate / start / powerOff: POST, 202, the power state after the operation."""

    def action(s: State, call: Call, vm: Resource) -> Reply:
        vm.properties["powerState"] = state

        def done() -> None:
            vm.properties["powerState"] = final

        return lro(s, call, s.start_operation(done), PROVIDER, 202, None)

    return action


def evict(s: State, vm: Resource) -> None:
    """Azure reclaims a Spot VM: evictionPolicy Delete removes it (and what it deletes with
    it), Deallocate leaves it deallocated."""
    if vm.properties.get("priority") != "Spot":
        raise ValueError(f"{vm.id} is not a Spot VM")
    if vm.properties.get("evictionPolicy", "Deallocate") == "Delete":
        remove_vm(s, vm)
    else:
        vm.properties["powerState"] = "deallocated"
