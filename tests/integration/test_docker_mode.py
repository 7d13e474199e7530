"""Docker mode end to end with a real container engine (rootful podman, tests/podman.py):
Ray runs inside one container per node, jobs run there, and `down` leaves nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rayctl.providers.local.instances import marked_pids
from tests.conftest import REPO
from tests.podman import Podman, podman_engine, require_podman

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "spread_tasks.py"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    require_podman()
    with podman_engine(tmp_path_factory.mktemp("podman")) as engine:
        saved = {k: os.environ.get(k) for k in engine.env}
        os.environ.update(engine.env)  # rayctl's podman commands use the tests' engine
        try:
            yield engine
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_local_cluster_runs_ray_in_containers(podman, make_cluster, cli, rayctl_home, tmp_path):
    mounted = tmp_path / "data"
    mounted.mkdir()
    (mounted / "hello.txt").write_text("from the laptop\n")
    cluster = make_cluster(
        "dk",
        docker={
            "container_name": "rayctl_test",
            "image": podman.image,
            "pull_before_run": False,
            "use_podman": True,
            "run_options": ["-v", "/usr:/usr:ro"],  # the test image's bash (tests/podman.py)
        },
        max_workers=1,  # on a loaded machine, few Rays restarting at once
        file_mounts={"~/data": str(mounted)},
        setup_commands=["test -e /run/.containerenv && echo in-container > ~/where"],
    )
    label = f"rayctl.cluster={cluster.name}"
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    status = cluster.status(cli)
    nodes = {n["id"] for n in status["nodes"]}
    containers = podman.containers(label)
    assert sorted(containers) == sorted(f"rayctl_test-{n}" for n in nodes)

    # Each node's raylet runs in its container's cgroup (podman names it by container id).
    for node_id in nodes:
        cid = podman.run("inspect", "--format", "{{.Id}}", f"rayctl_test-{node_id}").strip()
        raylets = [
            pid
            for pid in marked_pids("RAYCTL_PROC", node_id)
            if b"raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ]
        assert raylets, f"no raylet of {node_id}"
        assert all(f"libpod-{cid}" in cgroup_of(pid) for pid in raylets)

    job = cli("submit", cluster.config, EXAMPLE, "--", "4", "1", "0")
    assert job.code == 0, job.text
    assert "4 tasks ran on 2 nodes" in job.out
    # Setup ran inside the container; file mounts are there; exec runs there too (its
    # output goes to this process's own stdout: it leaves a file in the head's home instead).
    seen = "test -e /run/.containerenv && cat ~/where ~/data/hello.txt > ~/seen"
    assert cli("exec", cluster.config, seen).code == 0
    head = next(n["id"] for n in status["nodes"] if n["kind"] == "head")
    home = rayctl_home / "clusters" / cluster.name / "nodes" / head
    assert (home / "seen").read_text() == "in-container\nfrom the laptop\n"

    # An unchanged `up` keeps the containers (the same ids).
    def container_ids() -> list[str]:
        return sorted(podman.run("ps", "-q", "--no-trunc", "--filter", f"label={label}").split())

    ids = container_ids()
    again = cli("up", cluster.config, "--yes")
    assert again.code == 0, again.text
    assert container_ids() == ids

    # Changed run options re-create the containers; setup runs again in the new ones.
    changed = yaml.safe_load(cluster.config.read_text())
    changed["docker"]["run_options"] += ["-e", "RAYCTL_TEST_MARK=two words"]
    cluster.config.write_text(yaml.safe_dump(changed))
    (home / "where").unlink()
    third = cli("up", cluster.config, "--yes")
    assert third.code == 0, third.text
    assert not set(container_ids()) & set(ids)
    marked = 'test "$RAYCTL_TEST_MARK" = "two words" && cat ~/where > ~/seen'
    assert cli("exec", cluster.config, marked).code == 0
    assert (home / "seen").read_text() == "in-container\n"

    down = cli("down", cluster.config, "--yes")
    assert down.code == 0, down.text
    assert podman.containers(label) == []
    assert podman.images() == [podman.image]  # rayctl pulled none, so removes none
