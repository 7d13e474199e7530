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

from rayctl.providers.base import NodeKind
from rayctl.providers.gcp import instances as gcp
from tests import cloud_backing as e2e
from tests.conftest import kill_leftovers, unique_name
from tests.gce_backing import PROJECT, REGION, ZONES, BackedGce, backed_gce

pytestmark = pytest.mark.integration


@pytest.fixture
def booted_gce(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedGce]:
    yield from e2e.in_use(backed_gce(), monkeypatch)


@pytest.fixture
def dead_gce(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedGce]:
    """No instance ever boots: nothing answers at their addresses."""
    yield from e2e.in_use(backed_gce(boot=False), monkeypatch)


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
    config = e2e.cluster_config(name, provider, node_config, gce.network.client_key)
    return name, e2e.write_cluster_config(config, tmp_path)


def test_gcp_lifecycle(
    booted_gce: BackedGce, cli, tmp_path: Path, rayctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gce = booted_gce
    name, config = write_config(gce, tmp_path)
    try:
        _, first_id = e2e.up_with_a_worker(cli, gce, name, config, rayctl_home)
        inserts = gce.fake.calls["compute.instances.bulkInsert"]
        second_id = e2e.a_job_adds_a_worker(cli, gce, name, config, tmp_path, first_id)
        assert gce.fake.calls["compute.instances.bulkInsert"] == inserts + 1  # one bulkInsert
        e2e.an_idle_worker_goes(gce, name, {first_id, second_id})

        e2e.down_from_a_fresh_machine(cli, config, gce.network.wrong_key, tmp_path, monkeypatch)
        assert gce.leftovers(name) == {}
        e2e.nothing_runs_after_down(gce, name)
    finally:
        if gce.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)


def test_the_idle_head_stops_the_instances_and_up_resumes_them(
    booted_gce: BackedGce, cli, tmp_path: Path, rayctl_home: Path
) -> None:
    gce = booted_gce
    name, config = write_config(gce, tmp_path)
    try:
        e2e.stopped_then_resumed(cli, gce, name, config, tmp_path, rayctl_home)
        assert gce.leftovers(name) == {}
        e2e.nothing_runs_after_down(gce, name)
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
        (head_id,) = gce.cluster_nodes(name)[NodeKind.HEAD.value]
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
