"""compute.disks: get, list, aggregatedList, delete. Disks are created with instances."""

from __future__ import annotations

from .errors import ApiError
from .listing import aggregated_response, list_response
from .records import COMPUTE
from .routing import Call, Route
from .state import State


def get(s: State, call: Call, project: str, zone: str, disk: str) -> dict:
    return s.disk(zone, disk).resource()


def list_(s: State, call: Call, project: str, zone: str) -> dict:
    s.check_zone(zone)
    found = sorted((d for (z, _), d in s.disks.items() if z == zone), key=lambda d: d.name)
    link = f"{COMPUTE}projects/{s.project}/zones/{zone}/disks"
    return list_response("compute#diskList", link, [d.resource() for d in found], call.query)


def aggregated_list(s: State, call: Call, project: str) -> dict:
    by_zone: dict[str, list[dict]] = {zone: [] for zone in s.zones}
    for disk in sorted(s.disks.values(), key=lambda d: d.name):
        by_zone[disk.zone].append(disk.resource())
    link = f"{COMPUTE}projects/{s.project}/aggregated/disks"
    return aggregated_response("compute#diskAggregatedList", "disks", by_zone, call.query, link)


def delete(s: State, call: Call, project: str, zone: str, disk: str) -> dict:
    found = s.disk(zone, disk)
    if found.users:
        where = f"projects/{s.project}/zones/{zone}"
        user = found.users[0].removeprefix(f"{COMPUTE}")
        raise ApiError(
            400,
            f"The disk resource '{where}/disks/{disk}' is already being used by '{user}'",
            "resourceInUseByAnotherResource",
        )

    def remove() -> None:
        s.disks.pop((zone, disk), None)

    link = found.resource()["selfLink"]
    return s.start_operation(
        "delete", link, scope=f"zones/{zone}", target_id=found.id, effect=remove
    )


_ZONAL = "/compute/v1/projects/<project>/zones/<zone>/disks"
ROUTES = [
    Route("GET", _ZONAL, "compute.disks.list", list_),
    Route(
        "GET",
        "/compute/v1/projects/<project>/aggregated/disks",
        "compute.disks.aggregatedList",
        aggregated_list,
    ),
    Route("GET", f"{_ZONAL}/<disk>", "compute.disks.get", get),
    Route("DELETE", f"{_ZONAL}/<disk>", "compute.disks.delete", delete),
]
