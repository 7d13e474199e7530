"""A stateful Compute Engine v1 REST fake, driven in tests by the real google-cloud-compute
clients. No emulator exists for GCE; this is the smallest honest stand-in.

    with GceFake(zones=("us-central1-a", "us-central1-b")) as fake:
        gce = compute_clients(fake.endpoint)          # real SDK clients, REST, anonymous
        fake.stockout("us-central1-a")                # then launch and watch the failover
        ...
        assert fake.calls["compute.instances.bulkInsert"] == 1

What it serves (one module each): instances.py (insert, bulkInsert zonal and regional with
namePattern/perInstanceProperties/locationPolicy, get, list, aggregatedList, setLabels with
labelFingerprint, stop, start, delete), disks.py (created with instances; get, list,
aggregatedList, delete), operations.py (zone, region and global operations: get, wait),
firewalls.py, iam.py (compute projects.get; Resource Manager v1/v3 testIamPermissions,
getIamPolicy, setIamPolicy; IAM v1 service accounts). Lists filter (listing.py) and page
(maxResults, pageToken) as GCE does. Errors come in GCE's shapes (errors.py).

Knobs on GceFake: stockout, quota_exceeded, rate_limit, fail (any HTTP error), machine type
unavailable in a zone, slow_operations, preempt, boot_seconds, granted_permissions, an
injectable clock; `calls` counts calls per API method id.

Addresses: private ones from the subnet the test gives (default 10.220.1.0/24 from .4), so
a harness can back each instance with a namespace host there. A public natIP only when an
instance asks for an accessConfig, and then from 203.0.113.0/24 (RFC 5737, documentation):
tests must never contact it. selfLinks name https://www.googleapis.com/ as GCE's do; never
follow them, address the fake through its endpoint.

SDK pitfalls this relies on (DESIGN.md section 6): ClientOptions(api_endpoint="http://...")
with AnonymousCredentials; op.result() polls through hidden operations clients that
compute_clients re-points at the fake; a failed operation carries httpErrorStatusCode and
httpErrorMessage (without them op.result() succeeds); pass `filter` via `request=`.
"""

from .clients import ComputeClients, compute_clients
from .errors import ApiError
from .server import GceFake

__all__ = ["ApiError", "ComputeClients", "GceFake", "compute_clients"]
