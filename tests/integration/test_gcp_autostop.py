"""Autostop with `--down` on GCP end to end: the GCE fake plays Compute Engine and IAM, every
instance is a real sshd host (tests/gce_backing.py), and the head's monitor, on the head host,
removes its cluster through the fake once it has been idle for the timeout; a running job
keeps it past the timeout. Nothing of the cluster is left but its account's inert `deleted:`
role bindings (which the head may not remove; `down` from here does), and no host runs on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cloud_backing as e2e
from tests.conftest import kill_leftovers
from tests.gce_backing import BackedGce, backed_gce
from tests.integration.test_gcp_cluster import write_config

pytestmark = pytest.mark.integration

TIMEOUT_S = 20  # --autostop 0.33...
# A real instance's OS takes seconds to shut down once it is being deleted: the head's
# monitor deletes its service account in that time.
SHUTDOWN_S = 10.0


@pytest.fixture
def gce(monkeypatch: pytest.MonkeyPatch, rayctl_home: Path) -> Iterator[BackedGce]:
    yield from e2e.in_use(backed_gce(shutdown_s=SHUTDOWN_S), monkeypatch)


def only_deleted_bindings(gce: BackedGce, name: str) -> bool:
    left = gce.leftovers(name)
    return set(left) <= {"bindings"} and all(" deleted:" in b for b in left.get("bindings", []))


def test_a_job_keeps_the_cluster_then_the_idle_head_removes_it(
    gce: BackedGce, cli, tmp_path: Path
) -> None:
    name, config = write_config(gce, tmp_path)
    try:
        e2e.a_job_keeps_it_then_the_idle_head_removes_it(
            cli,
            gce,
            name,
            config,
            tmp_path,
            timeout_s=TIMEOUT_S,
            gone=lambda: only_deleted_bindings(gce, name),
        )
        e2e.nothing_runs_after_down(gce, name, hosts_s=SHUTDOWN_S + 30)
        assert gce.leftovers(name), "the deleted account's bindings, left for IAM or `down`"

        down = cli("down", config, "--yes")  # removes those bindings; this machine forgets it
        assert down.code == 0, down.text
        assert gce.leftovers(name) == {}
    finally:
        if gce.leftovers(name):
            cli("down", config, "--yes")
        kill_leftovers(name)
