"""Clusters by name, through the installed `rayctl` in a subprocess, on a real local cluster:
`clusters` lists what `up` recorded, commands take the name for CONFIG, a misspelt name
exits 4 with the nearest, and `down` of a config that no longer validates uses the record."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliResult, cluster_pids

pytestmark = pytest.mark.integration

RAYCTL = Path(sys.executable).parent / "rayctl"


@pytest.fixture
def rayctl(rayctl_home: Path):
    def invoke(*args: object) -> CliResult:
        done = subprocess.run(
            [RAYCTL, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "RAYCTL_HOME": str(rayctl_home)},
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return invoke


def test_a_cluster_is_reached_by_name_and_torn_down_from_a_broken_config(
    make_cluster, rayctl, rayctl_home: Path
):
    cluster = make_cluster("de-day1")
    name = cluster.name
    assert rayctl("clusters", "--json").out.strip() == '{\n  "clusters": []\n}'
    up = rayctl("up", cluster.config, "--yes")
    assert up.code == 0, up.text

    listed = json.loads(rayctl("clusters", "--json").out)["clusters"]
    head_ip = rayctl("get-head-ip", name)
    assert head_ip.code == 0, head_ip.text
    assert listed == [
        {
            "name": name,
            "provider": "local",
            "nodes": 2,
            "head_ip": head_ip.out.strip(),
            "config": str(cluster.config.resolve()),
            "record": str(rayctl_home / "clusters" / name / "cluster.json"),
            "error": None,
        }
    ]
    record = rayctl_home / "clusters" / name / "cluster.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    token = (rayctl_home / "clusters" / name / "ray_auth_token").read_text().strip()
    assert len(token) > 16 and token not in record.read_text()  # named by path, never held
    assert name in rayctl("clusters").out

    # The YAML is not needed any more: by name, from anywhere.
    cluster.config.rename(cluster.config.with_suffix(".moved"))
    ran = rayctl("exec", name, 'echo "at=$RAY_ADDRESS"')
    assert ran.code == 0 and "at=" in ran.out, ran.text
    status = rayctl("status", name, "--json")
    assert status.code == 0 and len(json.loads(status.out)["nodes"]) == 2, status.text
    cluster.config.with_suffix(".moved").rename(cluster.config)

    typo = name.replace("-", "_", 1)
    for args in (("down", cluster.config, "-n", typo, "--yes"), ("status", typo)):
        wrong = rayctl(*args)
        assert wrong.code == 4, (args, wrong.text)
        assert f"did you mean {name}?" in wrong.err
    unknown = rayctl("status", "nowhere-at-all")
    assert unknown.code == 4 and f"known: {name}" in unknown.err
    # a name like no known cluster's: nothing to remove, and CI teardown goes on
    other = rayctl("down", cluster.config, "-n", "never-was", "--yes")
    assert other.code == 0 and "nothing to do" in other.out, other.text
    assert len(cluster_pids(name)) > 2  # none of it touched the cluster

    broken = cluster.config.with_name("broken.yaml")
    broken.write_text(cluster.config.read_text().replace("max_workers:", "max_wrokers:", 1))
    assert rayctl("status", broken).code == 2  # only `down` falls back to the record
    down = rayctl("down", broken, "--yes")
    assert down.code == 0, down.text
    assert "nothing is left" in down.out
    assert f"{broken} is invalid" in down.err and "max_wrokers" in down.err
    assert str(record) in down.err
    assert cluster_pids(name) == []
    assert json.loads(rayctl("clusters", "--json").out)["clusters"] == []

    # Removed: by name or by config, a repeated teardown has nothing to do, and exits 0.
    for target in (name, cluster.config):
        again = rayctl("down", target, "--yes")
        assert again.code == 0 and "nothing to do" in again.out, again.text
