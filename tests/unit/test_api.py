"""The Python API without a cluster: `import rayctl` loads no operations until `rayctl.Cluster`
is used; an invalid config raises ConfigError located at FILE:LINE:COL; a submission that
names no local script is refused before anything is reached or created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rayctl.api import BadSubmission, Cluster
from rayctl.errors import ConfigError
from tests.conftest import REPO, write_config

LAZY = """\
import sys
import rayctl, rayctl.config
loaded = sorted(m for m in sys.modules if m.startswith(("rayctl.api", "rayctl.ops")))
from rayctl.api import Cluster
print(loaded, rayctl.Cluster is Cluster)
"""


def test_import_rayctl_loads_the_api_only_when_used():
    result = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def test_an_unknown_name_is_an_attribute_error():
    import rayctl

    with pytest.raises(AttributeError, match="no attribute 'Clusters'"):
        rayctl.Clusters  # noqa: B018


def test_from_config_of_an_invalid_config_raises_a_located_config_error(
    tmp_path: Path, rayctl_home: Path
):
    config = tmp_path / "bad.yaml"
    config.write_text("cluster_name: bad\nprovider:\n  type: local\nmax_worker: 3\n")
    with pytest.raises(ConfigError) as invalid:
        Cluster.from_config(config)
    assert invalid.value.problems == [
        f"{config}:4:1: max_worker: unknown key; did you mean 'max_workers'?"
    ]
    assert not rayctl_home.exists()


@pytest.mark.parametrize("given", ["nothere.py", "python nothere.py --tasks 1", "python", ""])
def test_submit_of_no_local_script_is_refused_before_anything(
    tmp_path: Path, rayctl_home: Path, given: str
):
    cluster = Cluster.from_config(write_config(tmp_path / "c.yaml", "apiunit"))
    with pytest.raises(BadSubmission, match="no such script here") as refused:
        cluster.submit(given)
    assert refused.value.exit_code == 2
    assert not rayctl_home.exists()
