"""rayctl and Ray installed for real into a fresh runtime venv on an sshd host that cannot
reach the internet (a network-namespace host, tests/sshhosts.py), from a wheelhouse.

sync_wheelhouse copies the wheelhouse to ~/.rayctl/wheelhouse, as bootstrap does; then
ensure_runtime, through the SSH runner, creates ~/.rayctl/runtime with `python3 -m venv`,
uploads rayctl's own wheel, and installs with
`pip install --no-index --find-links ~/.rayctl/wheelhouse`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rayctl
from rayctl.config.runtime_packages import node_requirements
from rayctl.config.schema import ClusterConfig, RuntimeSettings
from rayctl.providers import registry
from rayctl.runtime.install import (
    build_wheel,
    ensure_runtime,
    runtime_identity,
    sync_wheelhouse,
)
from rayctl.runtime.ssh_runner import SSHRunner
from tests.sshhosts import HostNetwork

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel a node installs by default: rayctl's wheel's requirements (its METADATA's
    Requires-Dist, Ray pinned) and Ray's default extras (its libraries), for this Python;
    from PyPI through pip's cache."""
    root = tmp_path_factory.mktemp("wheelhouse")
    wheel = build_wheel(root / "cache")
    house = root / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    wanted = [str(wheel), *node_requirements(RuntimeSettings())]
    subprocess.run(
        [*pip, "download", "-q", "--only-binary", ":all:", "-d", str(house), *wanted], check=True
    )
    (house / wheel.name).unlink()  # the node gets rayctl's wheel from ensure_runtime
    return house


def test_fresh_host_gets_rayctl_and_ray_from_the_wheelhouse(
    tmp_path: Path, wheelhouse: Path, host_network: HostNetwork
):
    host = host_network.hosts[-1]
    home = host.home  # the host's `~`, seen from here at the same path
    # python3 on the host is this venv's base interpreter, which the wheelhouse was made for;
    # its pip sees only the wheelhouse (no pip config of this machine).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    lines: list[str] = []
    runner = SSHRunner(
        host.address,
        node_id=host.address,
        user="root",
        key_path=host_network.client_key,
        known_hosts=tmp_path / "known_hosts",
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": os.devnull},
    )
    config = registry.validate(
        {
            "cluster_name": "install-test",
            "provider": {"type": "ssh", "head_ip": host.address},
            "auth": {"ssh_user": "root", "ssh_private_key": str(host_network.client_key)},
            "rayctl": {"runtime": {"wheelhouse": str(wheelhouse)}},
        }
    )
    try:
        _install_then_check(runner, config, home, lines, tmp_path)
    finally:
        runner.close()
        shutil.rmtree(home / ".rayctl", ignore_errors=True)


def _install_then_check(
    runner: SSHRunner, config: ClusterConfig, home: Path, lines: list[str], tmp_path: Path
) -> None:
    started = time.monotonic()
    sync_wheelhouse(runner, config)
    assert ensure_runtime(runner, config, stream=lines.append, cache_dir=tmp_path / "cache")
    took = time.monotonic() - started
    print(f"\nfresh install of rayctl and Ray from the wheelhouse: {took:.1f} s")

    python = home / ".rayctl" / "runtime" / "bin" / "python"
    assert python.is_file()
    # Ray's libraries came too: Data's pandas and pyarrow, Serve's starlette, Tune's tensorboardX.
    code = (
        "import pandas, pyarrow, starlette, tensorboardX; "
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
    assert commands[0].endswith(f"'{node_requirements(RuntimeSettings())[0]}'")
