"""compute.instances: insert, bulkInsert, get, list, aggregatedList, setLabels, stop, start,
delete; and preemption, which GCE does to spot instances on its own."""

from __future__ import annotations

import re

from .errors import STOCKOUT_CODES, ApiError, OperationError, already_exists, invalid
from .listing import aggregated_response, list_response
from .records import COMPUTE, AttachedDisk, Disk, Instance
from .routing import Call, Route
from .state import State

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MACHINE_TYPE_URL = re.compile(r"(?:.*/)?zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)")
_BULK_MT = "bulkInsertInstanceResource.instanceProperties.machineType"
# Fields GCE computes; what a caller sends for them is not stored.
_COMPUTED = ("name", "machineType", "disks", "networkInterfaces", "labels", "labelFingerprint")


def _zone_url(s: State, zone: str) -> str:
    return f"{COMPUTE}projects/{s.project}/zones/{zone}"


# -- validation, before anything is created ----------------------------------------------


def _check_labels(labels: dict[str, str], field: str) -> None:
    if len(labels) > 64:
        raise invalid(f"Invalid value for field '{field}': at most 64 labels are allowed.")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise invalid(
                f"Invalid value for field '{field}': '{key}={value}'. Label keys and values "
                "may contain only lowercase letters, digits, '_' and '-' (keys start with a "
                "letter), at most 63 characters each."
            )


def _check_new(s: State, zone: str, names: list[str], spec: dict, field: str) -> None:
    for name in names:
        if not _NAME.fullmatch(name):
            raise invalid(
                f"Invalid value for field '{field}.name': '{name}'. Must be a match of regex "
                "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
            )
        if (zone, name) in s.instances:
            raise already_exists(f"projects/{s.project}/zones/{zone}/instances/{name}")
    _check_labels(spec.get("labels", {}), f"{field}.labels")
    disks = spec.get("disks", [])
    if sum(1 for d in disks if d.get("boot")) != 1:
        raise invalid(f"Invalid value for field '{field}.disks': Boot disk must be specified.")
    for d in disks:
        _check_labels(d.get("initializeParams", {}).get("labels", {}), f"{field}.disks.labels")


def _disk_conflict(s: State, zone: str, names: list[str], spec: dict) -> OperationError | None:
    """A new disk whose name is taken (say, a kept disk of an earlier instance) fails the
    operation, as GCE creates disks after it accepted the call."""
    for name in names:
        for index, given in enumerate(spec.get("disks", [])):
            disk = _new_disk_name(name, index, given)
            if disk and (zone, disk) in s.disks:
                where = f"projects/{s.project}/zones/{zone}/disks/{disk}"
                return OperationError(
                    "RESOURCE_ALREADY_EXISTS", f"The resource '{where}' already exists", 409
                )
    return None


def _new_disk_name(instance: str, index: int, given: dict) -> str | None:
    """The name of the disk initializeParams create (the boot disk is named after the
    instance, as GCE does); None for an existing disk attached by `source`."""
    if "source" in given:
        return None
    params = given.get("initializeParams", {})
    return params.get("diskName") or (instance if given.get("boot") else f"{instance}-{index}")


def _machine_type(s: State, zone: str, given: str, field: str, *, url: bool) -> str:
    """The bare machine type. instances.insert takes a (partial) URL; bulkInsert's
    instanceProperties take a bare name, as instance templates do."""
    found = _MACHINE_TYPE_URL.fullmatch(given)
    if url and (not found or found["zone"] != zone):
        raise invalid(
            f"Invalid value for field '{field}': '{given}'. "
            "Must be a URL to a valid Compute resource of the correct type."
        )
    if not url and ("/" in given or not given):
        raise invalid(f"Invalid value for field '{field}': '{given}'. Must be a machine type name.")
    name = found["name"] if url and found else given
    if (zone, name) in s.unavailable:
        raise invalid(
            f"Invalid value for field '{field}': '{given}'. "
            f"Machine type with name '{name}' does not exist in zone '{zone}'."
        )
    return name


# -- creating, booting, removing ---------------------------------------------------------


def _create(s: State, zone: str, name: str, machine_type: str, spec: dict) -> Instance:
    nic = (spec.get("networkInterfaces") or [{}])[0]
    wants_public = any(
        a.get("type", "ONE_TO_ONE_NAT") == "ONE_TO_ONE_NAT" for a in nic.get("accessConfigs", [])
    )
    passthrough = {k: v for k, v in spec.items() if k not in _COMPUTED}
    passthrough.update({k: nic[k] for k in ("network", "subnetwork") if k in nic})
    inst = Instance(
        labels=dict(spec.get("labels", {})),
        id=s.new_id(),
        project=s.project,
        zone=zone,
        name=name,
        machine_type=machine_type,
        status="PROVISIONING",
        network_ip=s.private_ips.take(),
        nat_ip=s.public_ips.take() if wants_public else None,
        disks=[],
        passthrough=passthrough,
    )
    for index, given in enumerate(spec.get("disks", [])):
        inst.disks.append(_attach(s, inst, index, given))
    s.instances[zone, name] = inst
    _boot(s, inst, "PROVISIONING")
    return inst


def _attach(s: State, inst: Instance, index: int, given: dict) -> AttachedDisk:
    """A new disk from initializeParams, or an existing one by `source`. A new disk carries
    initializeParams.labels only: GCE does not copy the instance's labels to its disks."""
    boot = bool(given.get("boot"))
    name = _new_disk_name(inst.name, index, given)
    if name is None:
        disk = s.disk(inst.zone, given["source"].rsplit("/", 1)[-1])
    else:
        params = given.get("initializeParams", {})
        disk = Disk(
            labels=dict(params.get("labels", {})),
            id=s.new_id(),
            project=s.project,
            zone=inst.zone,
            name=name,
            size_gb=int(params.get("diskSizeGb", 10)),
            disk_type=params.get("diskType", "pd-standard").rsplit("/", 1)[-1],
            source_image=params.get("sourceImage"),
            users=[],
        )
        s.disks[inst.zone, disk.name] = disk
    disk.users.append(inst.self_link)
    return AttachedDisk(
        disk=disk.name,
        device_name=given.get("deviceName", disk.name),
        boot=boot,
        auto_delete=given.get("autoDelete", "source" not in given),
        mode=given.get("mode", "READ_WRITE"),
    )


def _boot(s: State, inst: Instance, status: str) -> None:
    """PROVISIONING -> STAGING -> RUNNING over `boot_seconds`; a step applies only while the
    instance is still in the state before it (a stop or delete in between wins)."""
    inst.status = status

    def step(before: str, after: str) -> None:
        if inst.status == before:
            inst.status = after

    s.after(s.boot_seconds / 2, lambda: step("PROVISIONING", "STAGING"))
    s.after(s.boot_seconds, lambda: step("STAGING", "RUNNING"))


def _remove(s: State, inst: Instance) -> None:
    if s.instances.get((inst.zone, inst.name)) is not inst:
        return  # already gone (two deletes in flight)
    del s.instances[inst.zone, inst.name]
    s.private_ips.give_back(inst.network_ip)
    if inst.nat_ip:
        s.public_ips.give_back(inst.nat_ip)
    for attached in inst.disks:
        disk = s.disks[inst.zone, attached.disk]
        disk.users.remove(inst.self_link)
        if attached.auto_delete:
            del s.disks[inst.zone, attached.disk]


def preempt(s: State, zone: str, name: str) -> None:
    """What GCE does to a spot VM it reclaims: STOPPING, then TERMINATED, then gone when its
    instanceTerminationAction is DELETE."""
    inst = s.instance(zone, name)
    scheduling = inst.scheduling
    if scheduling.get("provisioningModel") != "SPOT" and not scheduling.get("preemptible"):
        raise ValueError(f"{name} is not a spot or preemptible instance: GCE would not preempt it")
    inst.status = "STOPPING"

    def terminated() -> None:
        inst.status = "TERMINATED"
        if scheduling.get("instanceTerminationAction") == "DELETE":
            _remove(s, inst)

    s.after(s.operation_seconds, terminated)


# -- handlers ------------------------------------------------------------------------------


def insert(s: State, call: Call, project: str, zone: str) -> dict:
    spec = call.body
    name = spec.get("name", "")
    machine_type = _machine_type(
        s, zone, spec.get("machineType", ""), "resource.machineType", url=True
    )
    _check_new(s, zone, [name], spec, "resource")
    link = f"{_zone_url(s, zone)}/instances/{name}"
    failure = _disk_conflict(s, zone, [name], spec) or s.take_fault(
        "compute.instances.insert", zone, OperationError
    )
    if failure:
        return s.start_operation("insert", link, scope=f"zones/{zone}", failure=failure)
    inst = _create(s, zone, name, machine_type, spec)
    return s.start_operation("insert", link, scope=f"zones/{zone}", target_id=inst.id)


def _bulk_names(s: State, zone: str, body: dict, count: int) -> list[str]:
    """perInstanceProperties' names first, then namePattern's, numbered after the highest
    existing instance that matches the pattern (inst-#### -> inst-0001, inst-0002, ...)."""
    names = list(body.get("perInstanceProperties", {}))
    pattern = body.get("namePattern", "")
    if len(names) >= count:
        return names[:count]
    hashes = re.fullmatch(r"([^#]*)(#+)([^#]*)", pattern)
    if not hashes:
        raise invalid(
            f"Invalid value for field 'bulkInsertInstanceResource.namePattern': '{pattern}'. "
            "It must contain one run of '#' characters."
        )
    prefix, width, suffix = hashes[1], len(hashes[2]), hashes[3]
    taken = re.compile(re.escape(prefix) + rf"(\d{{{width}}})" + re.escape(suffix))
    highest = max(
        (int(m[1]) for z, n in s.instances if z == zone and (m := taken.fullmatch(n))),
        default=0,
    )
    needed = count - len(names)
    if highest + needed >= 10**width:
        raise invalid(f"namePattern '{pattern}' has too few '#' for {needed} more instances.")
    return names + [
        f"{prefix}{n:0{width}d}{suffix}" for n in range(highest + 1, highest + needed + 1)
    ]


def _bulk_spec(body: dict) -> tuple[int, dict]:
    """The count and instanceProperties of a bulkInsert, checked."""
    count = int(body.get("count", 0))
    min_count = int(body.get("minCount", count))
    if count < 1 or not 1 <= min_count <= count:
        raise invalid(
            "Invalid value for field 'bulkInsertInstanceResource.count': "
            f"count {count}, minCount {min_count}. Need 1 <= minCount <= count."
        )
    if "instanceProperties" not in body:
        raise invalid("The fake supports bulkInsert with instanceProperties only.")
    return count, body["instanceProperties"]


def _bulk_plan(s: State, zone: str, body: dict, count: int, spec: dict) -> tuple[str, list[str]]:
    """The machine type and the names of a bulkInsert's instances in `zone`, checked."""
    machine_type = _machine_type(s, zone, spec.get("machineType", ""), _BULK_MT, url=False)
    names = _bulk_names(s, zone, body, count)
    _check_new(s, zone, names, spec, "bulkInsertInstanceResource.instanceProperties")
    return machine_type, names


def _location_status(count: int, created: int) -> dict:
    return {
        "createdVmCount": created,
        "failedToCreateVmCount": count - created,
        "targetVmCount": count,
        "status": "FULFILLED" if created else "FAILED",
    }


def _bulk_operation(
    s: State, scope: str, status: dict[str, dict], failure: OperationError | None
) -> dict:
    return s.start_operation(
        "bulkInsert",
        f"{COMPUTE}projects/{s.project}/{scope}/instances",
        scope=scope,
        failure=failure,
        metadata={"instancesBulkInsertOperationMetadata": {"perLocationStatus": status}},
    )


def bulk_insert(s: State, call: Call, project: str, zone: str) -> dict:
    """All `count` instances or none: GCE creates at least minCount, and the fake, having no
    partial capacity, creates every one unless a fault fails the whole request."""
    s.check_zone(zone)
    count, spec = _bulk_spec(call.body)
    machine_type, names = _bulk_plan(s, zone, call.body, count, spec)
    failure = _disk_conflict(s, zone, names, spec) or s.take_fault(
        "compute.instances.bulkInsert", zone, OperationError
    )
    if not failure:
        for name in names:
            _create(s, zone, name, machine_type, spec)
    placed = _location_status(count, 0 if failure else count)
    return _bulk_operation(s, f"zones/{zone}", {f"zones/{zone}": placed}, failure)


def region_bulk_insert(s: State, call: Call, project: str, region: str) -> dict:
    """regionInstances.bulkInsert: the region's zones that locationPolicy does not DENY and
    that offer the machine type, in order; a stockout in one moves on to the next, any
    other failure (a quota) fails the request."""
    s.check_region(region)
    count, spec = _bulk_spec(call.body)
    locations = call.body.get("locationPolicy", {}).get("locations", {})
    machine_type = spec.get("machineType", "")
    zones = [
        z
        for z in s.zones
        if z.startswith(f"{region}-")
        and locations.get(f"zones/{z}", {}).get("preference") != "DENY"
        and (z, machine_type) not in s.unavailable
    ]
    if not zones:
        raise invalid(
            f"No zone of region '{region}' allowed by locationPolicy offers '{machine_type}'."
        )
    status: dict[str, dict] = {}
    failure = None
    for zone in zones:
        failure = s.take_fault("compute.regionInstances.bulkInsert", zone, OperationError)
        if failure is None:
            machine_type, names = _bulk_plan(s, zone, call.body, count, spec)
            failure = _disk_conflict(s, zone, names, spec)
        if failure is None:
            for name in names:
                _create(s, zone, name, machine_type, spec)
            status[f"zones/{zone}"] = _location_status(count, count)
            break
        status[f"zones/{zone}"] = _location_status(count, 0)
        if failure.code not in STOCKOUT_CODES:
            break
    return _bulk_operation(s, f"regions/{region}", status, failure)


def get(s: State, call: Call, project: str, zone: str, instance: str) -> dict:
    return s.instance(zone, instance).resource()


def list_(s: State, call: Call, project: str, zone: str) -> dict:
    s.check_zone(zone)
    found = sorted((i for (z, _), i in s.instances.items() if z == zone), key=lambda i: i.name)
    link = f"{_zone_url(s, zone)}/instances"
    return list_response("compute#instanceList", link, [i.resource() for i in found], call.query)


def aggregated_list(s: State, call: Call, project: str) -> dict:
    by_zone: dict[str, list[dict]] = {zone: [] for zone in s.zones}
    for inst in sorted(s.instances.values(), key=lambda i: i.name):
        by_zone[inst.zone].append(inst.resource())
    link = f"{COMPUTE}projects/{s.project}/aggregated/instances"
    return aggregated_response(
        "compute#instanceAggregatedList", "instances", by_zone, call.query, link
    )


def set_labels(s: State, call: Call, project: str, zone: str, instance: str) -> dict:
    inst = s.instance(zone, instance)
    labels = call.body.get("labels", {})
    _check_labels(labels, "instancesSetLabelsRequest.labels")
    if call.body.get("labelFingerprint") != inst.label_fingerprint:
        raise ApiError(
            412,
            "Labels fingerprint either invalid or resource labels have changed",
            "conditionNotMet",
        )

    def apply() -> None:
        inst.labels = dict(labels)

    return s.start_operation(
        "setLabels", inst.self_link, scope=f"zones/{zone}", target_id=inst.id, effect=apply
    )


def stop(s: State, call: Call, project: str, zone: str, instance: str) -> dict:
    inst = s.instance(zone, instance)
    if inst.status != "TERMINATED":
        inst.status = "STOPPING"

    def stopped() -> None:
        if inst.status == "STOPPING":
            inst.status = "TERMINATED"

    return s.start_operation(
        "stop", inst.self_link, scope=f"zones/{zone}", target_id=inst.id, effect=stopped
    )


def start(s: State, call: Call, project: str, zone: str, instance: str) -> dict:
    inst = s.instance(zone, instance)
    if inst.status in ("TERMINATED", "STOPPING"):
        _boot(s, inst, "STAGING")
    return s.start_operation("start", inst.self_link, scope=f"zones/{zone}", target_id=inst.id)


def delete(s: State, call: Call, project: str, zone: str, instance: str) -> dict:
    inst = s.instance(zone, instance)
    inst.status = "STOPPING"
    return s.start_operation(
        "delete",
        inst.self_link,
        scope=f"zones/{zone}",
        target_id=inst.id,
        effect=lambda: _remove(s, inst),
    )


_ZONAL = "/compute/v1/projects/<project>/zones/<zone>/instances"
ROUTES = [
    Route("POST", _ZONAL, "compute.instances.insert", insert),
    Route("POST", f"{_ZONAL}/bulkInsert", "compute.instances.bulkInsert", bulk_insert),
    Route(
        "POST",
        "/compute/v1/projects/<project>/regions/<region>/instances/bulkInsert",
        "compute.regionInstances.bulkInsert",
        region_bulk_insert,
    ),
    Route("GET", _ZONAL, "compute.instances.list", list_),
    Route(
        "GET",
        "/compute/v1/projects/<project>/aggregated/instances",
        "compute.instances.aggregatedList",
        aggregated_list,
    ),
    Route("GET", f"{_ZONAL}/<instance>", "compute.instances.get", get),
    Route("POST", f"{_ZONAL}/<instance>/setLabels", "compute.instances.setLabels", set_labels),
    Route("POST", f"{_ZONAL}/<instance>/stop", "compute.instances.stop", stop),
    Route("POST", f"{_ZONAL}/<instance>/start", "compute.instances.start", start),
    Route("DELETE", f"{_ZONAL}/<instance>", "compute.instances.delete", delete),
]

CREATE_METHODS = frozenset(
    {
        "compute.instances.insert",
        "compute.instances.bulkInsert",
        "compute.regionInstances.bulkInsert",
    }
)
