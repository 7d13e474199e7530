"""The AWS provider end to end: moto plays EC2 (a ThreadedMotoServer on a namespace bridge)
and every instance it runs is a real sshd host at the instance's private IP, booted when the
instance appears and powered off when it stops or terminates (tests/aws_backing.py).

up -> bootstrap over SSH -> Ray on every instance's private IP -> submit -> the monitor on
the head (another process, on the head host, with the head's own AWS credentials) launches a
worker through moto for the demand -> idle scale-down terminates it -> down leaves nothing
tagged with the cluster. And a failed `up` (the head never answers SSH) is cleaned by `down`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayctl.providers.aws import instances as aws
from rayctl.providers.base import NodeKind, Tag
from tests import cloud_backing as e2e
from tests.aws_backing import IMAGE, REGION, MotoEC2, backed_ec2
from tests.conftest import kill_leftovers, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def booted_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    yield from e2e.in_use(backed_ec2(), monkeypatch)


@pytest.fixture
def dead_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    """No instance ever boots: nothing answers at their addresses."""
    yield from e2e.in_use(backed_ec2(boot=False), monkeypatch)


def write_config(ec2: MotoEC2, tmp_path: Path) -> tuple[str, Path]:
    name = unique_name("aws")
    node_config = {"InstanceType": "m5.large", "ImageId": IMAGE, "SubnetIds": [ec2.subnet_id]}
    provider = {"type": "aws", "region": REGION}  # on internal IPs: never moto's public ones
    config = e2e.cluster_config(name, provider, node_config, ec2.network.client_key)
    return name, e2e.write_cluster_config(config, tmp_path)


def test_aws_lifecycle(
    booted_ec2: MotoEC2,
    cli,
    tmp_path: Path,
    rayctl_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ec2 = booted_ec2
    name, config = write_config(ec2, tmp_path)
    try:
        head_id, first_id = e2e.up_with_a_worker(cli, ec2, name, config, rayctl_home)
        # The head's monitor got the endpoint, and its credentials from the head's own home.
        assert (ec2.hosts()[head_id].home / ".aws" / "credentials").exists()

        second_id = e2e.a_job_adds_a_worker(cli, ec2, name, config, tmp_path, first_id)
        second = next(i for i in ec2.instances() if i["InstanceId"] == second_id)
        tags = {t["Key"]: t["Value"] for t in second["Tags"]}
        assert tags[Tag.CLUSTER] == name
        assert tags[Tag.KIND] == NodeKind.WORKER.value and tags[Tag.NODE_TYPE] == "worker"
        assert second["SubnetId"] == ec2.subnet_id

        gone = e2e.an_idle_worker_goes(ec2, name, {first_id, second_id})
        states = {i["InstanceId"]: i["State"]["Name"] for i in ec2.instances()}
        assert states[gone] in ("shutting-down", "terminated")

        e2e.down_from_a_fresh_machine(cli, config, ec2.network.wrong_key, tmp_path, monkeypatch)
        assert ec2.leftovers(name) == {}
        e2e.nothing_runs_after_down(ec2, name)
    finally:
        if ec2.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)


def test_failed_up_is_cleaned_by_down(
    dead_ec2: MotoEC2, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = dead_ec2
    monkeypatch.setenv("RAYCTL_SSH_CONNECT_ATTEMPTS_S", "3")
    monkeypatch.setattr(aws, "CONNECT_ATTEMPTS_S", 3.0)  # read when rayctl was imported
    name, config = write_config(ec2, tmp_path)
    try:
        started = time.monotonic()
        result = cli("up", config, "--yes")
        assert result.code != 0, result.text
        (head_id,) = ec2.cluster_nodes(name)[NodeKind.HEAD.value]
        assert head_id in result.err and "cannot reach" in result.err, result.err
        assert "Traceback" not in result.err
        assert time.monotonic() - started < 60

        down = cli("down", config, "--yes")
        assert down.code == 0, down.text
        assert ec2.leftovers(name) == {}
        assert ec2.ever_booted == {} and not ec2.network.hosts
    finally:
        if ec2.leftovers(name):
            cli("down", config, "--yes")
