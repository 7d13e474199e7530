"""Microsoft.Network: NICs (private addresses from the test's pool), public IPs
(documentation addresses), virtual networks with subnets, security groups with rules."""

from __future__ import annotations

from .errors import ArmError, invalid
from .routing import Call, Reply, lro
from .state import Resource, State

NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
PROVIDER = "Microsoft.Network"


def _reference(s: State, id_: str, referrer: str) -> Resource:
    found = s.find(id_)
    if found is None:
        raise invalid(
            f"Resource {id_} referenced by resource {referrer} was not found. Please make sure"
            " that the referenced resource exists, and that both resources are in the same"
            " region.",
            "InvalidResourceReference",
        )
    return found


def create(s: State, call: Call, id_: str, existing: Resource | None) -> Reply:
    """PUT of any network resource; NICs and public IPs get their addresses here."""
    type_ = "/".join(id_.split("/")[6:8])
    props = dict(call.body.get("properties", {}))
    if type_.lower() == NIC.lower():
        props = _nic_properties(s, id_, props, existing)
    elif type_.lower() == PUBLIC_IP.lower():
        props["ipAddress"] = existing.properties["ipAddress"] if existing else s.public_ips.take()
    for key in ("subnets", "securityRules"):  # children given inline get ids
        props[key] = [_child(id_, key, child) for child in props.get(key, [])]
    resource = Resource(
        id=existing.id if existing else id_,
        type=existing.type if existing else _canonical(type_),
        location=call.body.get("location", s.location),
        tags=call.body.get("tags", {}),
        zones=call.body.get("zones") or None,
        properties=props | {"provisioningState": "Succeeded"},
    )
    s.put(resource)
    return lro(
        s, call, s.start_operation(), PROVIDER, 200 if existing else 201, resource.resource()
    )


def _canonical(type_: str) -> str:
    known = [
        NIC,
        PUBLIC_IP,
        *(f"{PROVIDER}/{t}" for t in ("virtualNetworks", "networkSecurityGroups")),
    ]
    return next((k for k in known if k.lower() == type_.lower()), type_)


def _child(parent: str, key: str, child: dict) -> dict:
    return {
        "id": f"{parent}/{key}/{child['name']}",
        "name": child["name"],
        "properties": {**child.get("properties", {}), "provisioningState": "Succeeded"},
    }


def _nic_properties(s: State, id_: str, props: dict, existing: Resource | None) -> dict:
    configs = []
    old = existing.properties["ipConfigurations"] if existing else []
    for i, config in enumerate(props.get("ipConfigurations", [])):
        cprops = dict(config.get("properties", {}))
        subnet = cprops.get("subnet", {}).get("id")
        if not subnet:
            raise invalid(f"Subnet is required in IP configuration {config.get('name')}.")
        subnet_of(s, subnet, id_)
        if cprops.get("publicIPAddress"):
            _reference(s, cprops["publicIPAddress"]["id"], id_)
        cprops["privateIPAddress"] = (
            old[i]["properties"]["privateIPAddress"] if i < len(old) else s.private_ips.take()
        )
        cprops |= {"privateIPAllocationMethod": "Dynamic", "privateIPAddressVersion": "IPv4"}
        cprops["primary"] = i == 0
        name = config.get("name", f"ipconfig{i + 1}")
        configs.append({"id": f"{id_}/ipConfigurations/{name}", "name": name, "properties": cprops})
    if not configs:
        raise invalid("Network interface must have at least one IP configuration.")
    if existing and "virtualMachine" in existing.properties:
        props["virtualMachine"] = existing.properties["virtualMachine"]
    return props | {"ipConfigurations": configs}


def subnet_of(s: State, subnet_id: str, referrer: str) -> dict:
    vnet_id, _, name = subnet_id.rpartition("/subnets/")
    vnet = _reference(s, vnet_id, referrer)
    for subnet in vnet.properties.get("subnets", []):
        if subnet["name"].lower() == name.lower():
            return subnet
    raise invalid(
        f"Subnet {name} of {vnet_id} referenced by {referrer} was not found.",
        "InvalidResourceReference",
    )


def nic_for_vm(s: State, nic_id: str, vm_id: str) -> Resource:
    """The NIC a new VM asks for: it must exist, be free, and not be reserved."""
    nic = _reference(s, nic_id, vm_id)
    attached = nic.properties.get("virtualMachine", {}).get("id")
    if attached and attached.lower() != vm_id.lower():
        raise invalid(
            f"Network Interface {nic.id} is used by existing resource {attached}. In order to"
            " create a new resource, please use a different network interface.",
            "NicInUse",
        )
    _check_reservation(s, nic)
    return nic


def _check_reservation(s: State, nic: Resource) -> None:
    until, vm = s.reserved_nics.get(nic.id.lower(), (0.0, ""))
    if s.clock() < until:
        raise invalid(
            f"Nic(s) in request is reserved for another Virtual Machine for 180 seconds. Please"
            f" provide another nic(s) or retry after 180 seconds. Reserved VM: {vm}",
            "NicReservedForAnotherVm",
        )


def delete(s: State, call: Call, resource: Resource) -> Reply:
    if resource.type == NIC:
        attached = resource.properties.get("virtualMachine", {}).get("id")
        if attached:
            raise invalid(
                f"Network Interface {resource.id} is used by existing resource {attached}."
                " In order to delete the network interface, it must be dissociated from the"
                " resource.",
                "NicInUse",
            )
        _check_reservation(s, resource)
    return lro(s, call, s.start_operation(lambda: remove(s, resource)), PROVIDER, 202, None)


def remove(s: State, resource: Resource) -> None:
    if resource.type == NIC:
        remove_nic(s, resource)
        return
    if resource.type == PUBLIC_IP:
        s.public_ips.give_back(resource.properties["ipAddress"])
    s.remove(resource.id)


def remove_nic(s: State, nic: Resource) -> None:
    for config in nic.properties["ipConfigurations"]:
        s.private_ips.give_back(config["properties"]["privateIPAddress"])
    s.reserved_nics.pop(nic.id.lower(), None)
    s.remove(nic.id)


def put_child(s: State, call: Call, parent: Resource, key: str, name: str) -> Reply:
    """PUT .../virtualNetworks/V/subnets/S or .../networkSecurityGroups/N/securityRules/R."""
    child = _child(parent.id, key, {"name": name, **call.body})
    children = parent.properties.setdefault(key, [])
    old = next((c for c in children if c["name"].lower() == name.lower()), None)
    if old:
        children.remove(old)
    children.append(child)
    return lro(s, call, s.start_operation(), PROVIDER, 200 if old else 201, child)


def get_child(parent: Resource, key: str, name: str) -> Reply:
    for child in parent.properties.get(key, []):
        if child["name"].lower() == name.lower():
            return Reply(200, child)
    raise ArmError(404, "NotFound", f"Resource {parent.id}/{key}/{name} not found.")
