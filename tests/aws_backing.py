"""EC2 instances backed by real machines: moto's server plays EC2 (and IAM, STS), and every
instance it runs is a namespace host (tests/sshhosts.py) at the instance's private IP
(tests/cloud_backing.py boots and removes them).

moto serves on the bridge of a host network (10.210.0.0/16's first subnet, 10.210.1.0/24), so
both this process and a monitor on a host (another process, in another namespace) reach it at
http://10.210.1.1:<port> through AWS_ENDPOINT_URL. A VPC 10.210.0.0/16 with that subnet makes
moto hand out 10.210.1.4, .5, ... A pending or running instance gets a host, the head's with
`~/.aws/credentials` (the fake credentials a real head gets from its instance profile); a
stopping or stopped instance has its host powered off, kept for a start; a shutting-down or
terminated one has its host powered off and removed. moto's public addresses are never
contacted: configs use internal IPs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from rayctl.providers.base import Tag
from tests.cloud_backing import Backed, InstanceHosts, Seen
from tests.sshhosts import HostNetwork, SSHHost

PREFIX = "10.210.1"
VPC_CIDR = "10.210.0.0/16"
SUBNET_CIDR = f"{PREFIX}.0/24"
REGION = "us-west-2"
IMAGE = "ami-1e749f67"  # one of moto's images
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
BOOTED = ("pending", "running")
KEPT = ("stopping", "stopped")
OFF = ("stopping", "stopped", "shutting-down", "terminated")


@dataclass
class MotoEC2(Backed):
    """moto on the network's bridge, a VPC and subnet in it, and (with `boot`) a host for
    every running instance. Use as a context manager: everything stops on exit."""

    network: HostNetwork
    boot: bool = True
    shutdown_s: float = 0.0  # how long a going instance's host runs on (InstanceHosts)
    binds_for: Callable[[Seen], Mapping[str, Path]] | None = None  # InstanceHosts'

    def __post_init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._hosts = InstanceHosts(
            self.network,
            self._observe,
            boot=self.boot,
            on_head=_give_credentials,
            binds_for=self.binds_for,
            shutdown_s=self.shutdown_s,
        )

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def cloud_env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION}

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """This process talks to moto with fake credentials, nothing of the real machine's."""
        for var in (
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_EC2",
            "AWS_ENDPOINT_URL_STS",
        ):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        super().use(monkeypatch)

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
            self._hosts.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._hosts.stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None

    def instances(self) -> list[dict[str, Any]]:
        found = []
        for page in self.ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                found += reservation["Instances"]
        return found

    def _observe(self) -> list[Seen]:
        return [
            Seen(
                i["InstanceId"],
                i.get("PrivateIpAddress"),
                i["State"]["Name"] in BOOTED,
                _tags(i),
                kept=i["State"]["Name"] in KEPT,
            )
            for i in self.instances()
        ]

    def cluster_instances(self, cluster: str, states: tuple[str, ...] = BOOTED) -> list[dict]:
        return [
            i
            for i in self.instances()
            if _tags(i).get(Tag.CLUSTER) == cluster and i["State"]["Name"] in states
        ]

    def cluster_nodes(self, cluster: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for i in self.cluster_instances(cluster):
            found.setdefault(_tags(i).get(Tag.KIND, ""), []).append(i["InstanceId"])
        return found

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
        iam = self.client("iam")
        roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if cluster in r["RoleName"]]
        profiles = [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if cluster in p["InstanceProfileName"]
        ]
        found = {
            "instances": instances,
            "security groups": [g["GroupId"] for g in groups],
            "volumes": [v["VolumeId"] for v in volumes],
            "key pairs": [k["KeyName"] for k in keys],
            "roles": roles,
            "instance profiles": profiles,
        }
        return {k: v for k, v in found.items() if v}


def _give_credentials(head: SSHHost) -> None:
    """What the head's instance profile would give its monitor."""
    aws = head.home / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "credentials").write_text(
        "[default]\n" + "".join(f"{k.lower()} = {v}\n" for k, v in CREDENTIALS.items())
    )


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


@contextlib.contextmanager
def backed_ec2(
    *,
    boot: bool = True,
    shutdown_s: float = 0.0,
    binds_for: Callable[[Seen], Mapping[str, Path]] | None = None,
) -> Iterator[MotoEC2]:
    """A host network on 10.210.1.0/24 with moto on its bridge and hosts for instances."""
    with (
        HostNetwork(0, prefix=PREFIX) as network,
        MotoEC2(network, boot=boot, shutdown_s=shutdown_s, binds_for=binds_for) as ec2,
    ):
        yield ec2
