"""The AWS provider end to end: moto plays EC2 (a ThreadedMotoServer on a namespace bridge)
and every instance it runs is a real sshd host at the instance's private IP, booted when the
instance appears and powered off when it stops or terminates (tests/aws_backing.py).

up -> bootstrap over SSH -> Ray on every instance's private IP -> submit -> the monitor on
the head (another process, on the head host, with the head's own AWS credentials) launches a
worker through moto for the demand -> idle scale-down terminates it -> down leaves nothing
tagged with the cluster. And a failed `up` (the head never answers SSH) is cleaned by `down`;
and docker mode (Ray in a container on each instance, its image from a private registry).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayctl.providers.aws import instances as aws
from rayctl.providers.base import NodeKind, Tag
from tests import cloud_backing as e2e
from tests.aws_backing import CREDENTIALS, IMAGE, REGION, MotoEC2, backed_ec2
from tests.conftest import REPO, WHERE_JOB, kill_leftovers, unique_name
from tests.podman import InstanceEngines, podman_engine, programs_in, require_podman
from tests.registry import Registry, registry, require_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def booted_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    yield from e2e.in_use(backed_ec2(), monkeypatch)


@pytest.fixture
def dead_ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    """No instance ever boots: nothing answers at their addresses."""
    yield from e2e.in_use(backed_ec2(boot=False), monkeypatch)


def aws_config(ec2: MotoEC2) -> dict[str, Any]:
    node_config = {"InstanceType": "m5.large", "ImageId": IMAGE, "SubnetIds": [ec2.subnet_id]}
    provider = {"type": "aws", "region": REGION}  # on internal IPs: never moto's public ones
    return e2e.cluster_config(unique_name("aws"), provider, node_config, ec2.network.client_key)


def write_config(ec2: MotoEC2, tmp_path: Path) -> tuple[str, Path]:
    config = aws_config(ec2)
    return config["cluster_name"], e2e.write_cluster_config(config, tmp_path)


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


@pytest.fixture
def docker_ec2(
    monkeypatch: pytest.MonkeyPatch, rayctl_home: Path, tmp_path: Path
) -> Iterator[tuple[MotoEC2, Registry, InstanceEngines]]:
    """moto whose instances' hosts each have the tests' podman, configured before their
    sshd starts, and a private registry on the network's bridge that they reach."""
    require_podman()
    require_registry()
    engines = InstanceEngines(tmp_path / "engines")
    try:
        cloud = backed_ec2(binds_for=engines.binds_for)
        with (
            contextlib.contextmanager(e2e.in_use)(cloud, monkeypatch) as ec2,
            registry(tmp_path / "registry", host=ec2.network.gateway) as reg,
        ):
            engines.registries_conf = reg.registries_conf
            yield ec2, reg, engines
    finally:
        engines.remove()


def pushed_test_image(reg: Registry, tmp_path: Path) -> str:
    """The test image (tests/podman.py), built here and pushed to `reg`: its name there."""
    with podman_engine(tmp_path / "builder") as builder:
        image = f"{reg.server}/{builder.image.removeprefix('localhost/')}"
        creds = f"{reg.username}:{reg.password}"
        builder.run("push", "--tls-verify=false", "--creds", creds, builder.image, image)
    return image


def test_aws_docker_mode(
    docker_ec2: tuple[MotoEC2, Registry, InstanceEngines], cli, tmp_path: Path, rayctl_home: Path
) -> None:
    """Docker mode on moto: every instance's Ray runs in a container its host's engine pulls
    from a private registry (logged in by rayctl); the head's monitor, in its container,
    launches a worker for a job; `down` leaves no instance, container, image or login."""
    ec2, reg, engines = docker_ec2
    image = pushed_test_image(reg, tmp_path)
    password = tmp_path / "registry-password"
    password.write_text(reg.password)
    config = aws_config(ec2)
    name = config["cluster_name"]
    config["max_workers"] = 1
    config["idle_timeout_minutes"] = 10  # the worker stays until `down`
    config["available_node_types"]["worker"].update(min_workers=0, max_workers=1)
    config["rayctl"]["registry_login"] = {
        "server": reg.server,
        "username": reg.username,
        "password_file": str(password),
    }
    config["docker"] = {
        "container_name": "rayctl_test",
        "image": image,
        "pull_before_run": True,
        "use_podman": True,
        "run_options": [  # the hosts share this machine's files: its Python and this checkout
            *("-v", "/usr:/usr:ro", "-v", f"{REPO}:{REPO}:ro"),
            *("-v", f"{sys.base_prefix}:{sys.base_prefix}:ro"),
        ],
        # What the head's instance profile gives its monitor (as aws_backing's ~/.aws does
        # on the host, which the container does not see).
        "head_run_options": [f"--env={k}={v}" for k, v in CREDENTIALS.items()],
    }
    config_path = e2e.write_cluster_config(config, tmp_path)
    label = f"rayctl.cluster={name}"
    try:
        up = cli("up", config_path, "--yes")
        assert up.code == 0, (up.text, ec2.errors)
        (head,) = ec2.cluster_nodes(name)[NodeKind.HEAD.value]
        assert list(ec2.cluster_nodes(name)) == [NodeKind.HEAD.value]  # no worker yet

        # Only a worker has a CPU: the head's monitor launches one through moto, whose
        # engine logs in with the head's copy of the password to pull the image.
        job = tmp_path / "job.py"
        job.write_text(WHERE_JOB)
        ran = cli("submit", config_path, job)
        assert ran.code == 0, (ran.text, ec2.errors)
        (worker,) = ec2.cluster_nodes(name)[NodeKind.WORKER.value]
        hosts = ec2.hosts()
        assert f"ran on: {hosts[worker].name}" in ran.out, ran.out
        e2e.check_ray_nodes(cli, config_path, rayctl_home, {i: hosts[i] for i in (head, worker)})
        for instance in (head, worker):
            engine = engines.engines[instance].entered(hosts[instance])
            (container,) = engine.containers(label)
            cid = engine.run("inspect", "--format", "{{.Id}}", container).strip()
            assert "raylet" in programs_in(f"libpod-{cid}"), f"no raylet in {instance}'s container"
            assert engine.images() == [image] and reg.server in engine.logins()

        down = cli("down", config_path, "--yes")
        assert down.code == 0, down.text
        assert ec2.leftovers(name) == {}
        e2e.nothing_runs_after_down(ec2, name)
        for engine in engines.engines.values():  # their hosts are gone: read from here
            assert (engine.containers(label), engine.images(), engine.logins()) == ([], [], {})
    finally:
        if ec2.leftovers(name):
            cli("down", config_path, "--yes")
        kill_leftovers(name)
