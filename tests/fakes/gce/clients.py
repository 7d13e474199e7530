"""The real google-cloud-compute clients, pointed at a fake (or any endpoint).

The provider takes a factory of these, so tests hand it `compute_clients(fake.endpoint)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

C = TypeVar("C")


@dataclass(frozen=True)
class ComputeClients:
    instances: compute_v1.InstancesClient
    region_instances: compute_v1.RegionInstancesClient
    disks: compute_v1.DisksClient
    firewalls: compute_v1.FirewallsClient
    projects: compute_v1.ProjectsClient
    zone_operations: compute_v1.ZoneOperationsClient
    region_operations: compute_v1.RegionOperationsClient
    global_operations: compute_v1.GlobalOperationsClient


def compute_clients(endpoint: str) -> ComputeClients:
    """REST clients with anonymous credentials for `endpoint` (http://127.0.0.1:PORT)."""

    def make(client: type[C]) -> C:
        return client(
            transport="rest",
            client_options=ClientOptions(api_endpoint=endpoint),
            credentials=AnonymousCredentials(),
        )

    clients = ComputeClients(
        instances=make(compute_v1.InstancesClient),
        region_instances=make(compute_v1.RegionInstancesClient),
        disks=make(compute_v1.DisksClient),
        firewalls=make(compute_v1.FirewallsClient),
        projects=make(compute_v1.ProjectsClient),
        zone_operations=make(compute_v1.ZoneOperationsClient),
        region_operations=make(compute_v1.RegionOperationsClient),
        global_operations=make(compute_v1.GlobalOperationsClient),
    )
    # op.result() polls through an operations client each transport builds on first use
    # from its credentials alone, so it would ask the real googleapis.com: hand it ours.
    for zonal in (clients.instances, clients.disks):
        zonal._transport._extended_operations_services["zone_operations"] = clients.zone_operations
    clients.region_instances._transport._extended_operations_services["region_operations"] = (
        clients.region_operations
    )
    clients.firewalls._transport._extended_operations_services["global_operations"] = (
        clients.global_operations
    )
    return clients
