"""EC2 instances backed by real machines: moto's server plays EC2 (and IAM, STS), and every
instance it runs is a namespace host (tests/sshhosts.py) at the instance's private IP.

moto serves on the bridge of a host network (10.210.0.0/16's first subnet, 10.210.1.0/24), so
both this process and a monitor on a host (another process, in another namespace) reach it at
http://10.210.1.1:<port> through AWS_ENDPOINT_URL. A VPC 10.210.0.0/16 with that subnet makes
moto hand out 10.210.1.4, .5, ... A watcher thread polls describe_instances: a pending or
running instance with a private IP gets a host booted at that IP ("the VM boots"), with
`~/.aws/credentials` on the head (the fake credentials a real head gets from its instance
profile); a stopping, stopped, shutting-down or terminated instance has its host powered off
and removed. moto's public addresses are never contacted: configs use internal IPs only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from rayctl.providers.base import NodeKind, Tag
from tests.sshhosts import HostNetwork, SSHHost

PREFIX = "10.210.1"
VPC_CIDR = "10.210.0.0/16"
SUBNET_CIDR = f"{PREFIX}.0/24"
REGION = "us-west-2"
IMAGE = "ami-1e749f67"  # one of moto's images
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
POLL_S = 0.2
BOOTED = ("pending", "running")
OFF = ("stopping", "stopped", "shutting-down", "terminated")


@dataclass
class Booted:
    instance_id: str
    host: SSHHost
    tags: dict[str, str]


@dataclass
class MotoEC2:
    """moto on the network's bridge, a VPC and subnet in it, and (with `boot`) a host for
    every running instance. Use as a context manager: everything stops on exit."""

    network: HostNetwork
    boot: bool = True
    booted: dict[str, Booted] = field(default_factory=dict)  # instance id -> its host now
    ever_booted: dict[str, str] = field(default_factory=dict)  # instance id -> private IP
    errors: list[str] = field(default_factory=list)  # hosts the watcher could not boot/remove
    describe_failures: int = 0  # moto's server answers 500 now and then under concurrent calls

    def __post_init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """What a process needs to use this EC2 (the test's rayctl)."""
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "NO_PROXY": self.network.gateway,
            "no_proxy": self.network.gateway,
        }

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(service, endpoint_url=self.endpoint)

    def __enter__(self) -> MotoEC2:
        self._server = ThreadedMotoServer(ip_address=self.network.gateway, port=0, verbose=False)
        self._server.start()
        try:
            self.ec2 = self.client("ec2")
            vpc = self.ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
            self.subnet_id = self.ec2.create_subnet(
                VpcId=vpc, CidrBlock=SUBNET_CIDR, AvailabilityZone=f"{REGION}a"
            )["Subnet"]["SubnetId"]
            self.vpc_id = vpc
            if self.boot:
                self._thread = threading.Thread(target=self._watch, name="ec2-hosts", daemon=True)
                self._thread.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for booted in self.booted.values():
                self.network.remove_host(booted.host)
            self.booted.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None

    # -- the watcher -------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # keep watching; the test sees the error
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def instances(self) -> list[dict[str, Any]]:
        found = []
        for page in self.ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                found += reservation["Instances"]
        return found

    def sync(self) -> None:
        """Power off the hosts of instances that stopped or went; boot hosts for new ones."""
        try:
            instances = self.instances()
        except Exception:  # the next poll asks again
            self.describe_failures += 1
            return
        with self._lock:
            state = {i["InstanceId"]: i["State"]["Name"] for i in instances}
            for instance_id, booted in list(self.booted.items()):
                if state.get(instance_id, "terminated") in OFF:
                    self.network.remove_host(booted.host)
                    del self.booted[instance_id]
            for instance in instances:
                instance_id, address = instance["InstanceId"], instance.get("PrivateIpAddress")
                if instance["State"]["Name"] not in BOOTED or not address:
                    continue
                if instance_id in self.booted:
                    continue
                # An address moto gave again: whatever held it is gone (removed above).
                self._boot(instance_id, address, _tags(instance))

    def _boot(self, instance_id: str, address: str, tags: dict[str, str]) -> None:
        host = self.network.add_host(address, name="ip-" + address.replace(".", "-"))
        if tags.get(Tag.KIND) == NodeKind.HEAD.value:
            # What the head's instance profile would give its monitor.
            aws = host.home / ".aws"
            aws.mkdir(mode=0o700)
            (aws / "credentials").write_text(
                "[default]\n" + "".join(f"{k.lower()} = {v}\n" for k, v in CREDENTIALS.items())
            )
        self.booted[instance_id] = Booted(instance_id, host, tags)
        self.ever_booted[instance_id] = address

    # -- what the tests look at --------------------------------------------------------------

    def hosts(self) -> dict[str, SSHHost]:
        """Instance id -> its running host."""
        with self._lock:
            return {i: b.host for i, b in self.booted.items()}

    def cluster_instances(self, cluster: str, states: tuple[str, ...] = BOOTED) -> list[dict]:
        return [
            i
            for i in self.instances()
            if _tags(i).get(Tag.CLUSTER) == cluster and i["State"]["Name"] in states
        ]

    def leftovers(self, cluster: str) -> dict[str, list[str]]:
        """Everything tagged with the cluster that is not terminated."""
        mine = [{"Name": f"tag:{Tag.CLUSTER}", "Values": [cluster]}]
        instances = [
            f"{i['InstanceId']} {i['State']['Name']}"
            for i in self.cluster_instances(cluster, ("pending", "running", *OFF[:3]))
        ]
        groups = self.ec2.describe_security_groups(Filters=mine)["SecurityGroups"]
        volumes = self.ec2.describe_volumes(Filters=mine)["Volumes"]
        keys = self.ec2.describe_key_pairs(Filters=mine)["KeyPairs"]
        roles = [
            r["RoleName"]
            for r in self.client("iam").list_roles()["Roles"]
            if cluster in r["RoleName"]
        ]
        found = {
            "instances": instances,
            "security groups": [g["GroupId"] for g in groups],
            "volumes": [v["VolumeId"] for v in volumes],
            "key pairs": [k["KeyName"] for k in keys],
            "roles": roles,
        }
        return {k: v for k, v in found.items() if v}


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


@contextlib.contextmanager
def backed_ec2(*, boot: bool = True) -> Iterator[MotoEC2]:
    """A host network on 10.210.1.0/24 with moto on its bridge and hosts for instances."""
    with HostNetwork(0, prefix=PREFIX) as network, MotoEC2(network, boot=boot) as ec2:
        yield ec2
