"""Autostop with `--down` on Azure end to end: the ARM fake plays Azure Resource Manager, every
VM is a real sshd host (tests/azure_backing.py), and the head's monitor, on the head host,
removes its cluster through the fake once it has been idle for the timeout: the resource
group rayctl created goes whole (VMs, NICs, the vnet, the NSG, the identity and its role
assignment), in one call. A running job keeps it past the timeout; no host runs on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cloud_backing as e2e
from tests.azure_backing import BackedArm, backed_arm
from tests.conftest import kill_leftovers
from tests.integration.test_azure_cluster import write_config

pytestmark = pytest.mark.integration

TIMEOUT_S = 20  # --autostop 0.33...


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedArm]:
    yield from e2e.in_use(backed_arm(), monkeypatch)


def test_a_job_keeps_the_cluster_then_the_idle_head_removes_it(
    arm: BackedArm, cli, tmp_path: Path
) -> None:
    name, group, config = write_config(arm, tmp_path)
    try:
        e2e.a_job_keeps_it_then_the_idle_head_removes_it(
            cli,
            arm,
            name,
            config,
            tmp_path,
            timeout_s=TIMEOUT_S,
            gone=lambda: arm.leftovers(group) == {},
        )
        e2e.nothing_runs_after_down(arm, name)
        assert arm.fake.calls["ResourceGroups_Delete"] == 1  # by the head, in one call

        down = cli("down", config, "--yes")  # this machine forgets it; nothing to remove
        assert down.code == 0, down.text
        assert arm.leftovers(group) == {}
    finally:
        if arm.leftovers(group):
            cli("down", config, "--yes")
        kill_leftovers(name)
