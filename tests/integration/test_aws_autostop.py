"""Autostop on AWS end to end: moto plays EC2 and IAM, every instance is a real sshd host
(tests/aws_backing.py), and the head's monitor, on the head host with the head's own
credentials, acts through moto once the cluster has been idle for the timeout. With
`--down` it removes its cluster (a running job keeps it past the timeout): nothing tagged or
named for the cluster is left, and no host runs on. Without, it stops Ray and then the
instances, and `up` starts them again (tests/cloud_backing.py: stopped_then_resumed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cloud_backing as e2e
from tests.aws_backing import MotoEC2, backed_ec2
from tests.conftest import kill_leftovers
from tests.integration.test_aws_cluster import write_config

pytestmark = pytest.mark.integration

TIMEOUT_S = 30  # --autostop 0.5
# A real instance's OS takes seconds to shut down after TerminateInstances: the head's
# monitor deletes its role in that time.
SHUTDOWN_S = 10.0


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[MotoEC2]:
    yield from e2e.in_use(backed_ec2(shutdown_s=SHUTDOWN_S), monkeypatch)


def test_a_job_keeps_the_cluster_then_the_idle_head_removes_it(
    ec2: MotoEC2, cli, tmp_path: Path
) -> None:
    name, config = write_config(ec2, tmp_path)
    try:
        e2e.a_job_keeps_it_then_the_idle_head_removes_it(
            cli,
            ec2,
            name,
            config,
            tmp_path,
            timeout_s=TIMEOUT_S,
            gone=lambda: ec2.leftovers(name) == {},
        )
        e2e.nothing_runs_after_down(ec2, name, hosts_s=SHUTDOWN_S + 30)

        down = cli("down", config, "--yes")  # this machine forgets it; nothing to remove
        assert down.code == 0, down.text
        assert ec2.leftovers(name) == {}
    finally:
        if ec2.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)


def test_the_idle_head_stops_the_instances_and_up_resumes_them(
    ec2: MotoEC2, cli, tmp_path: Path, rayctl_home: Path
) -> None:
    name, config = write_config(ec2, tmp_path)
    try:
        e2e.stopped_then_resumed(cli, ec2, name, config, tmp_path, rayctl_home)
        assert ec2.leftovers(name) == {}
        e2e.nothing_runs_after_down(ec2, name, hosts_s=SHUTDOWN_S + 30)
    finally:
        if ec2.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)
