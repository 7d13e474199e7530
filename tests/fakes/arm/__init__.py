"""A stateful Azure Resource Manager REST fake, driven in tests by the real azure-mgmt SDKs.
Azure has no emulator for ARM; this is the smallest honest stand-in.

    with ArmFake(page_size=2) as fake:
        arm = arm_clients(fake)                          # real SDK clients, http, fake token
        fake.allocation_failed(zone="1")                 # then launch and watch the failover
        ...
        assert fake.calls["VirtualMachines_CreateOrUpdate"] == 2

What it serves, under /subscriptions/SUB (paths case-insensitive, as ARM's): subscriptions
get; resource groups (create, get, check, list by tag, delete as an LRO polled by Location
that deletes everything inside); compute.py: virtual machines (create/update as LRO polled
by Azure-AsyncOperation, get with $expand=instanceView, list, PATCH tags, delete, deallocate,
start, powerOff; zones; Spot priority and evictionPolicy; OS disk and NIC deleteOption),
disks (made with their VM); network.py: NICs, public IPs, virtual networks with subnets,
security groups with rules; resources.py: user-assigned identities and role assignments at
any scope. Lists page by `page_size` with absolute nextLinks. Calls are counted by their
REST operationId (`calls`); errors come in ARM's shape (errors.py).

Faults: allocation_failed per zone (the LRO fails ZonalAllocationFailed/AllocationFailed),
sku_not_available per size and zone (409), quota_exceeded (409 OperationNotAllowed),
rate_limit (429 with Retry-After), fail (any error), slow_operations, evict (Spot), a wrong
token (401), and a NIC reserved for `nic_reservation_seconds` after its VM's deletion
(400 NicReservedForAnotherVm) when it was not deleted with the VM, or (reserve_nics) as
Azure does after a failed creation, even when it was to go with the VM.

Addresses: NICs get private ones from the subnet the test gives (default 10.230.1.0/24 from
.4), whatever subnet the NIC names, so a harness can back each VM with a namespace host at
that address. Public IPs come from 203.0.113.0/24 (RFC 5737, documentation): tests must
never contact them. Async-operation URLs and nextLinks name the fake's own endpoint.

SDK pitfalls this relies on (DESIGN.md section 6): base_url plus a per-call policy that sets
request.context["enforce_https"] = False (the bearer policy refuses http otherwise);
polling_interval=0 and Retry-After: 0; pass model classes to the SDKs, never dicts.
"""

from .clients import ArmClients, arm_clients
from .errors import ArmError, OperationFailure
from .server import ArmFake

__all__ = ["ArmClients", "ArmError", "ArmFake", "OperationFailure", "arm_clients"]
