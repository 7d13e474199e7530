"""Compute Engine instances backed by real machines: the GCE fake (tests/fakes/gce) plays
Compute Engine, IAM and Resource Manager on the bridge of a host network on 10.220.1.0/24,
and every instance it runs is a namespace host at the instance's internal IP
(tests/cloud_backing.py boots them, powers them off while they are stopped, and removes
them). This process and the head's monitor (another process, on the head host) reach the
fake at http://10.220.1.1:<port> through RAYCTL_GCP_ENDPOINT, with
RAYCTL_GCP_CREDENTIALS=anonymous (a real head uses its service account). The fake gives
instances 10.220.1.4, .5, ...; its public addresses are documentation ones (203.0.113.x),
never contacted: configs use internal IPs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rayctl.providers.base import Tag
from rayctl.providers.gcp import labels
from rayctl.providers.gcp import setup as gcp_setup
from tests.cloud_backing import Backed, InstanceHosts, Seen
from tests.fakes.gce import ComputeClients, GceFake, compute_clients
from tests.sshhosts import HostNetwork

PREFIX = "10.220.1"
PROJECT = "test-project"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
UP = ("PROVISIONING", "STAGING", "RUNNING")
KEPT = ("STOPPING", "TERMINATED", "SUSPENDING", "SUSPENDED")  # a delete goes STOPPING, then gone


class BackedGce(Backed):
    """The fake on the network's bridge and (with `boot`) a host for every running instance."""

    def __init__(
        self, network: HostNetwork, fake: GceFake, *, boot: bool, shutdown_s: float = 0.0
    ) -> None:
        self.network = network
        self.fake = fake
        self.clients: ComputeClients = compute_clients(fake.endpoint)
        self._hosts = InstanceHosts(network, self._observe, boot=boot, shutdown_s=shutdown_s)

    def cloud_env(self) -> dict[str, str]:
        return {gcp_setup.ENDPOINT_ENV: self.fake.endpoint, gcp_setup.CREDENTIALS_ENV: "anonymous"}

    def instances(self) -> list[tuple[str, str, str, dict[str, str]]]:
        """(name, status, internal IP, rayctl's tags) of every instance in the project."""
        found = []
        for _, scoped in self.clients.instances.aggregated_list(project=PROJECT):
            for i in scoped.instances:
                nic = i.network_interfaces[0] if i.network_interfaces else None
                tags = labels.from_labels(dict(i.labels))
                found.append((i.name, i.status, nic.network_i_p if nic else "", tags))
        return found

    def _observe(self) -> list[Seen]:
        return [
            Seen(n, ip, status in UP, tags, kept=status in KEPT)
            for n, status, ip, tags in self.instances()
        ]

    def cluster_nodes(self, cluster: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for instance, status, _, tags in self.instances():
            if tags.get(Tag.CLUSTER) == cluster and status in UP:
                found.setdefault(tags.get(Tag.KIND, ""), []).append(instance)
        return found

    def leftovers(self, cluster: str) -> dict[str, list[str]]:
        return leftovers(self.fake, cluster)


def leftovers(fake: GceFake, cluster: str) -> dict[str, list[str]]:
    """Everything of the cluster left in the fake: instances, labelled disks, its firewall
    rules, its service account and the account's role bindings (also those a deleted account
    left, as `deleted:` members)."""
    mine = labels.encode_value(cluster)
    email = gcp_setup.service_account_email(cluster, fake.state.project)
    member = f"serviceAccount:{email}"
    state = fake.state
    with state.lock:
        found = {
            "instances": [
                f"{i.name} {i.status}"
                for i in state.instances.values()
                if i.labels.get("rayctl-cluster") == mine
            ],
            "disks": [
                d.name for d in state.disks.values() if d.labels.get("rayctl-cluster") == mine
            ],
            "firewalls": [
                n for n in state.firewalls if n.startswith(gcp_setup.network_tag(cluster))
            ],
            "service accounts": [e for e in state.service_accounts if e == email],
            "bindings": [
                f"{role} {m}"
                for (role, _), members in sorted(state.policy.bindings.items())
                for m in sorted(members)
                if m == member or m.startswith(f"deleted:{member}?uid=")
            ],
        }
    return {k: v for k, v in found.items() if v}


@contextlib.contextmanager
def backed_gce(*, boot: bool = True, shutdown_s: float = 0.0) -> Iterator[BackedGce]:
    """A host network on 10.220.1.0/24 with the GCE fake on its bridge and hosts for
    instances (each running on `shutdown_s` after its instance goes)."""
    with HostNetwork(0, prefix=PREFIX) as network:
        address = network.gateway
        with (
            GceFake(
                address=address,
                project=PROJECT,
                zones=ZONES,
                subnet=f"{PREFIX}.0/24",
                first_ip=f"{PREFIX}.4",
            ) as fake,
            BackedGce(network, fake, boot=boot, shutdown_s=shutdown_s) as gce,
        ):
            yield gce
