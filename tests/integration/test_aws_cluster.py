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
from tests.aws_backing import IMAGE, REGION, MotoEC2, backed_ec2
from tests.cloud_backing import (
    check_ray_nodes,
    cluster_config,
    down_from_a_fresh_machine,
    write_cluster_config,
)
from tests.conftest import (
    SPREAD_JOB,
    cluster_pids,
    kill_leftovers,
    require_test_hosts,
    unique_name,
    wait_for,
)
from tests.sshhosts import _inits_of

pytestmark = pytest.mark.integration


def _use(ec2: MotoEC2, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process talks to moto with fake credentials, nothing of the real machine's."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for var, value in ec2.env().items():
        monkeypatch.setenv(var, value)


@pytest.fixture
def booted_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    require_test_hosts()
    with backed_ec2() as ec2:
        _use(ec2, monkeypatch)
        yield ec2


@pytest.fixture
def dead_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    """No instance ever boots: nothing answers at their addresses."""
    require_test_hosts()
    with backed_ec2(boot=False) as ec2:
        _use(ec2, monkeypatch)
        yield ec2


def write_config(ec2: MotoEC2, tmp_path: Path) -> tuple[str, Path]:
    name = unique_name("aws")
    node_config = {"InstanceType": "m5.large", "ImageId": IMAGE, "SubnetIds": [ec2.subnet_id]}
    provider = {"type": "aws", "region": REGION}  # on internal IPs: never moto's public ones
    config = cluster_config(name, provider, node_config, ec2.network.client_key)
    return name, write_cluster_config(config, tmp_path)


def _kinds(instances: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for i in instances:
        kind = {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(Tag.KIND, "")
        found.setdefault(kind, []).append(i["InstanceId"])
    return found


def _no_processes_left(ec2: MotoEC2, name: str) -> bool:
    return not list(_inits_of(ec2.network.dir)) and not cluster_pids(name)


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
        result = cli("up", config, "--yes")
        assert result.code == 0, (result.text, ec2.errors)

        kinds = _kinds(ec2.cluster_instances(name))
        (head_id,) = kinds[NodeKind.HEAD.value]
        (first_id,) = kinds[NodeKind.WORKER.value]
        hosts = ec2.hosts()
        head, first = hosts[head_id], hosts[first_id]
        assert head.address.startswith("10.210.1.") and first.address.startswith("10.210.1.")
        check_ray_nodes(cli, config, rayctl_home, {head_id: head, first_id: first})
        # The head's monitor got the endpoint, and its credentials from the head's own home.
        assert (head.home / ".aws" / "credentials").exists()

        # The job's second actor needs another worker: the monitor launches it through moto.
        job = tmp_path / "spread.py"
        job.write_text(SPREAD_JOB)
        submitted = cli("submit", config, job)
        assert submitted.code == 0, submitted.text
        workers = ec2.cluster_instances(name)
        (second_id,) = {i["InstanceId"] for i in workers} - {head_id, first_id}
        second = next(i for i in workers if i["InstanceId"] == second_id)
        tags = {t["Key"]: t["Value"] for t in second["Tags"]}
        assert tags[Tag.CLUSTER] == name
        assert tags[Tag.KIND] == NodeKind.WORKER.value and tags[Tag.NODE_TYPE] == "worker"
        assert second["SubnetId"] == ec2.subnet_id
        second_host = ec2.hosts()[second_id]
        assert f"hosts: {sorted([first.name, second_host.name])}" in submitted.out

        # Idle: back to min_workers; the idle worker's instance is terminated, its host gone.
        wait_for(
            lambda: len(_kinds(ec2.cluster_instances(name)).get("worker", [])) == 1,
            90,
            "the idle worker to be terminated",
        )
        (gone,) = {first_id, second_id} - set(_kinds(ec2.cluster_instances(name))["worker"])
        states = {i["InstanceId"]: i["State"]["Name"] for i in ec2.instances()}
        assert states[gone] in ("shutting-down", "terminated")
        wait_for(lambda: gone not in ec2.hosts(), 10, "the idle worker's host to go")

        down_from_a_fresh_machine(cli, config, ec2.network.wrong_key, tmp_path, monkeypatch)
        assert ec2.leftovers(name) == {}
        wait_for(lambda: not ec2.network.hosts, 10, "every host to go")
        wait_for(lambda: _no_processes_left(ec2, name), 15, "every process to go")
        assert ec2.errors == []
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
        (head_id,) = _kinds(ec2.cluster_instances(name))[NodeKind.HEAD.value]
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
