"""Azure VMs backed by real machines: the ARM fake (tests/fakes/arm) plays Azure Resource
Manager on the bridge of a host network on 10.230.1.0/24, and every VM it runs is a
namespace host at its NIC's private IP (tests/cloud_backing.py boots them, powers them off
while they are deallocated, and removes them). This process and the head's monitor
(another process, on the head host) reach the fake at http://10.230.1.1:<port> through
RAYCTL_AZURE_ENDPOINT with the fake's token in RAYCTL_AZURE_ACCESS_TOKEN (a real head uses
its managed identity). The fake gives NICs 10.230.1.4, .5, ...; its public addresses are
documentation ones (203.0.113.x), never contacted: configs use internal IPs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rayctl.providers.azure import setup as azure_setup
from rayctl.providers.base import Tag
from tests.cloud_backing import Backed, InstanceHosts, Seen
from tests.fakes.arm import ArmFake, compute
from tests.sshhosts import HostNetwork

PREFIX = "10.230.1"
LOCATION = "eastus"
ZONES = ("1", "2", "3")
UP = ("Creating", "Updating", "Succeeded")
KEPT = ("stopping", "stopped", "deallocating", "deallocated")  # power states


class BackedArm(Backed):
    """The fake on the network's bridge and (with `boot`) a host for every running VM."""

    def __init__(self, network: HostNetwork, fake: ArmFake, *, boot: bool) -> None:
        self.network = network
        self.fake = fake
        self._hosts = InstanceHosts(network, self._observe, boot=boot)

    def cloud_env(self) -> dict[str, str]:
        return {
            azure_setup.ENDPOINT_ENV: self.fake.endpoint,
            azure_setup.TOKEN_ENV: self.fake.token,
            "AZURE_SUBSCRIPTION_ID": self.fake.subscription,
        }

    def vms(self) -> list[tuple[str, bool, bool, str, dict[str, str]]]:
        """(name, up, kept, private IP, tags) of every VM in the subscription, read from the
        fake's state: up is created or being created, and running or starting; kept is
        stopped or deallocated (or on the way), its disk kept to start again."""
        state = self.fake.state
        found = []
        with state.lock:
            state.advance()
            for vm in state.resources.values():
                if vm.type != compute.VM:
                    continue
                props = vm.properties
                up = props["provisioningState"] in UP and props["powerState"] in (
                    "starting",
                    "running",
                )
                kept = props["provisioningState"] != "Deleting" and props["powerState"] in KEPT
                nic = state.find(props["networkProfile"]["networkInterfaces"][0]["id"])
                config = nic.properties["ipConfigurations"][0] if nic else {"properties": {}}
                ip = config["properties"].get("privateIPAddress", "")
                found.append((vm.name, up, kept, ip, dict(vm.tags)))
        return found

    def _observe(self) -> list[Seen]:
        return [Seen(name, ip, up, tags, kept=kept) for name, up, kept, ip, tags in self.vms()]

    def cluster_nodes(self, cluster: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, up, _, _, tags in self.vms():
            if up and tags.get(Tag.CLUSTER) == cluster:
                found.setdefault(tags.get(Tag.KIND, ""), []).append(name)
        return found

    def leftovers(self, group: str) -> dict[str, list[str]]:
        """What is left in the cluster's resource group (the test gives each cluster a group
        of its own): the group when rayctl created it, every resource in it (VMs, NICs,
        public IPs, disks, the vnet, the NSG, the identity) and role assignments on it."""
        state = self.fake.state
        scope = state.group_id(group).lower()
        with state.lock:
            state.advance()
            found = {
                "owned group": [
                    g.name
                    for g in state.groups.values()
                    if g.name.lower() == group.lower() and azure_setup.OWNER_TAG in g.tags
                ],
                "resources": sorted(f"{r.type}/{r.name}" for r in state.in_group(group)),
                "role assignments": [
                    n
                    for n, a in state.role_assignments.items()
                    if a.properties["scope"].lower().startswith(scope)
                ],
                "reserved NICs": [n for n in state.reserved_nics if n.startswith(scope)],
            }
        return {k: v for k, v in found.items() if v}


@contextlib.contextmanager
def backed_arm(*, boot: bool = True) -> Iterator[BackedArm]:
    """A host network on 10.230.1.0/24 with the ARM fake on its bridge and hosts for VMs."""
    with (
        HostNetwork(0, prefix=PREFIX) as net,
        ArmFake(
            address=net.gateway,
            location=LOCATION,
            zones=ZONES,
            subnet=f"{PREFIX}.0/24",
            first_ip=f"{PREFIX}.4",
        ) as fake,
        BackedArm(net, fake, boot=boot) as arm,
    ):
        yield arm
