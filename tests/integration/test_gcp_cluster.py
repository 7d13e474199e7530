"""The GCP provider end to end: the GCE fake plays Compute Engine (on a namespace bridge)
and every instance it runs is a real sshd host at the instance's internal IP, booted when the
instance appears and powered off when it stops or goes (tests/gce_backing.py).

up -> bootstrap over SSH -> Ray on every instance's internal IP -> submit -> the monitor on
the head (another process, on the head host) launches a worker through the fake for the
demand -> idle scale-down deletes it -> down leaves nothing of the cluster. And a failed
`up` (the head never answers SSH) is cleaned by `down`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayctl.providers.base import NodeKind, Tag
from rayctl.providers.gcp import instances as gcp
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
from tests.gce_backing import PROJECT, REGION, ZONES, BackedGce, backed_gce
from tests.sshhosts import _inits_of

pytestmark = pytest.mark.integration


@pytest.fixture
def booted_gce(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedGce]:
    require_test_hosts()
    with backed_gce() as gce:
        for var, value in gce.env().items():
            monkeypatch.setenv(var, value)
        yield gce


@pytest.fixture
def dead_gce(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedGce]:
    """No instance ever boots: nothing answers at their addresses."""
    require_test_hosts()
    with backed_gce(boot=False) as gce:
        for var, value in gce.env().items():
            monkeypatch.setenv(var, value)
        yield gce


def write_config(gce: BackedGce, tmp_path: Path) -> tuple[str, Path]:
    name = unique_name("gcp")
    boot = {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}
    node_config = {
        "machineType": "n2-standard-2",
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": boot}],
    }
    provider = {
        "type": "gcp",
        "project_id": PROJECT,
        "region": REGION,
        "availability_zone": ZONES[0],
        "ssh_source_cidrs": [f"{gce.network.gateway}/32"],
    }  # on internal IPs: never the fake's public addresses
    config = cluster_config(name, provider, node_config, gce.network.client_key)
    return name, write_cluster_config(config, tmp_path)


def _kinds(gce: BackedGce, name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for instance, status, _, tags in gce.instances():
        if tags.get(Tag.CLUSTER) == name and status in ("PROVISIONING", "STAGING", "RUNNING"):
            found.setdefault(tags.get(Tag.KIND, ""), []).append(instance)
    return found


def test_gcp_lifecycle(
    booted_gce: BackedGce, cli, tmp_path: Path, rayctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gce = booted_gce
    name, config = write_config(gce, tmp_path)
    try:
        result = cli("up", config, "--yes")
        assert result.code == 0, (result.text, gce.errors)

        kinds = _kinds(gce, name)
        (head_id,) = kinds[NodeKind.HEAD.value]
        (first_id,) = kinds[NodeKind.WORKER.value]
        hosts = gce.hosts()
        head, first = hosts[head_id], hosts[first_id]
        assert head.address.startswith("10.220.1.") and first.address.startswith("10.220.1.")
        check_ray_nodes(cli, config, rayctl_home, {head_id: head, first_id: first})

        # The job's second actor needs another worker: the monitor launches it through the
        # fake, with one bulkInsert.
        inserts = gce.fake.calls["compute.instances.bulkInsert"]
        job = tmp_path / "spread.py"
        job.write_text(SPREAD_JOB)
        submitted = cli("submit", config, job)
        assert submitted.code == 0, submitted.text
        (second_id,) = set(_kinds(gce, name)[NodeKind.WORKER.value]) - {first_id}
        assert gce.fake.calls["compute.instances.bulkInsert"] == inserts + 1
        second_host = gce.hosts()[second_id]
        assert f"hosts: {sorted([first.name, second_host.name])}" in submitted.out

        # Idle: back to min_workers; the idle worker's instance is deleted, its host gone.
        wait_for(
            lambda: len(_kinds(gce, name).get("worker", [])) == 1,
            90,
            "the idle worker to be deleted",
        )
        (gone,) = {first_id, second_id} - set(_kinds(gce, name)["worker"])
        wait_for(lambda: gone not in gce.hosts(), 10, "the idle worker's host to go")

        down_from_a_fresh_machine(cli, config, gce.network.wrong_key, tmp_path, monkeypatch)
        assert gce.leftovers(name) == {}
        wait_for(lambda: not gce.network.hosts, 10, "every host to go")
        wait_for(
            lambda: not list(_inits_of(gce.network.dir)) and not cluster_pids(name),
            15,
            "every process to go",
        )
        assert gce.errors == []
    finally:
        if gce.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)


def test_failed_up_is_cleaned_by_down(
    dead_gce: BackedGce, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gce = dead_gce
    monkeypatch.setenv("RAYCTL_SSH_CONNECT_ATTEMPTS_S", "3")
    monkeypatch.setattr(gcp, "CONNECT_ATTEMPTS_S", 3.0)
    name, config = write_config(gce, tmp_path)
    try:
        started = time.monotonic()
        result = cli("up", config, "--yes")
        assert result.code != 0, result.text
        (head_id,) = _kinds(gce, name)[NodeKind.HEAD.value]
        assert head_id in result.err and "cannot reach" in result.err, result.err
        assert "Traceback" not in result.err
        assert time.monotonic() - started < 60

        down = cli("down", config, "--yes")
        assert down.code == 0, down.text
        assert gce.leftovers(name) == {}
        assert gce.ever_booted == {} and not gce.network.hosts
    finally:
        if gce.leftovers(name):
            cli("down", config, "--yes")
