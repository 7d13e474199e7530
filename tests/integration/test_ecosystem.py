"""Ray's libraries on a local cluster started from the default install: the programs in
examples/ (tasks and actors, Ray Data, Ray Serve, Ray Tune) each submitted with `rayctl
submit`, each checking its own result (it exits non-zero otherwise) and printing it, which
the test checks too. And the head's memory is its share of the machine, as Ray reports it.

One cluster for all (starting one costs most of a test's time), taken down at the end."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from rayctl.providers.local.memory import fair_share, machine_memory_bytes
from tests.cli_cluster import CliCluster
from tests.conftest import REPO

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "examples"
MAX_WORKERS = 3  # no worker type: the head alone, with a quarter of the machine's memory
JOB_TIMEOUT_S = 600  # a loaded 2-core machine starts Serve and runs Tune's trials slowly


class Cluster(CliCluster):
    def submit(self, example: str, *args: object) -> str:
        """Run examples/<example> on the cluster; its output, once it exited 0."""
        done = self.rayctl(
            "submit", self.config, EXAMPLES / example, *args, timeout_s=JOB_TIMEOUT_S
        )
        assert done.returncode == 0, f"{example}:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Four CPUs: Serve's two replicas hold one each, Tune runs trials side by side.
    with Cluster.running(
        tmp_path_factory.mktemp("ecosystem"),
        "eco",
        max_workers=MAX_WORKERS,
        available_node_types={"ray.head.default": {"resources": {"CPU": 4}}},
    ) as made:
        yield made


def test_tasks_and_actors(cluster: Cluster):
    out = cluster.submit("tasks_and_actors.py")
    assert f"squares: {[i * i for i in range(10)]}" in out
    assert "running totals: [1, 3, 6, 10]" in out
    assert "tasks and actors: ok" in out


def test_ray_data_map_batches_groupby_and_parquet(cluster: Cluster):
    parquet = cluster.scratch / "parquet"
    out = cluster.submit("data_pipeline.py", parquet)
    assert f"rows per group: {dict.fromkeys(range(10), 100)}" in out
    assert f"wrote and read back 1000 rows in {parquet}; sum of squares 332833500" in out
    assert "ray data: ok" in out
    assert list(parquet.glob("*.parquet"))  # the files are where the job was told


def test_ray_serve_two_composed_deployments_over_http(cluster: Cluster):
    with socket.socket() as s:  # a port free on every address now; the machine is shared
        s.bind(("", 0))
        port = s.getsockname()[1]
    out = cluster.submit("serve_app.py", port)
    assert f":{port}/double?x=21 -> {{'x': 21, 'doubled': 42}}" in out
    assert "ray serve: ok" in out


def test_ray_tune_small_search(cluster: Cluster):
    out = cluster.submit("tune_search.py")
    assert "8 trials; best {'x': 3, 'y': -1} with loss 0" in out
    assert "ray tune: ok" in out


def test_the_heads_memory_is_its_share_of_the_machine(cluster: Cluster):
    status = cluster.rayctl("status", cluster.config, "--json")
    assert status.returncode == 0, status.stderr
    [head] = json.loads(status.stdout)["nodes"]
    memory, store = fair_share(machine_memory_bytes(), MAX_WORKERS)
    assert head["ray"] in ("RUNNING", "IDLE")
    assert head["resources"]["memory"] == memory
    assert head["resources"]["object_store_memory"] == store
