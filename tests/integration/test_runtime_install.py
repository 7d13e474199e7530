"""rayctl and Ray installed for real into a fresh runtime venv on a node, from a wheelhouse.

The node is a LocalRunner home (no SSH needed): ensure_runtime creates ~/.rayctl/runtime with
`python3 -m venv`, uploads rayctl's own wheel and installs it and Ray with
`pip install --no-index --find-links ~/.rayctl/wheelhouse`, as on a host without internet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rayctl
from rayctl.config.defaults import fill_defaults
from rayctl.config.schema import ClusterConfig
from rayctl.runtime.install import build_wheel, ensure_runtime, runtime_identity
from rayctl.runtime.runner import LocalRunner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel rayctl's wheel requires (exactly its METADATA's Requires-Dist, Ray pinned),
    for this Python; from PyPI through pip's cache."""
    root = tmp_path_factory.mktemp("wheelhouse")
    wheel = build_wheel(root / "cache")
    house = root / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "download", "-q", "--only-binary", ":all:", "-d", str(house), str(wheel)],
        check=True,
    )
    (house / wheel.name).unlink()  # the node gets rayctl's wheel from ensure_runtime
    return house


def test_fresh_node_gets_rayctl_and_ray_from_the_wheelhouse(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
):
    # The node's pip sees only the wheelhouse: no pip config or find-links of this machine.
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    # python3 on the node is this venv's base interpreter, which the wheelhouse was made for.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    home = tmp_path / "node"
    home.mkdir()
    lines: list[str] = []
    runner = LocalRunner(home, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    config = ClusterConfig.model_validate(
        fill_defaults(
            {
                "cluster_name": "install-test",
                "provider": {"type": "ssh", "head_ip": "10.0.0.1"},
                "auth": {"ssh_user": "root", "ssh_private_key": str(key)},
                "rayctl": {"runtime": {"wheelhouse": str(wheelhouse)}},
            }
        )
    )

    started = time.monotonic()
    assert ensure_runtime(runner, config, stream=lines.append, cache_dir=tmp_path / "cache")
    took = time.monotonic() - started
    print(f"\nfresh install of rayctl and Ray from the wheelhouse: {took:.1f} s")

    python = home / ".rayctl" / "runtime" / "bin" / "python"
    assert python.is_file()
    code = (
        "import ray, rayctl; from rayctl.runtime.install import runtime_identity; "
        "print(rayctl.__file__); print(ray.__version__); print(runtime_identity())"
    )
    out = subprocess.run(
        [str(python), "-c", code], cwd=home, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(home / ".rayctl" / "runtime")  # not this tree
    [wheel] = (tmp_path / "cache").glob("*/*.whl")  # its directory: the hash it was made of
    assert out[2] == f"rayctl {rayctl.__version__} {wheel.parent.name} ray {out[1]}"
    assert out[2] == runtime_identity()  # (while nobody edits this tree)
    assert (home / ".rayctl" / "runtime" / "bin" / "ray").is_file()
    assert (home / ".rayctl" / "runtime" / "bin" / "rayctl").is_file()
    assert any("--no-index --find-links" in line for line in lines if line.startswith("$ "))
    assert any(line.startswith("Successfully installed") for line in lines)

    lines.clear()
    started = time.monotonic()
    assert not ensure_runtime(runner, config, stream=lines.append, cache_dir=tmp_path / "cache")
    print(f"check of an installed node: {time.monotonic() - started:.2f} s")
    commands = [line for line in lines if line.startswith("$ ")]
    assert len(commands) == 1 and "runtime_identity" in commands[0]
