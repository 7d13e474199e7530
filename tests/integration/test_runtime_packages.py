"""`rayctl.runtime.packages` on real sshd hosts (tests/sshhosts.py), which cannot reach a
package index: a package only the nodes get, from a wheelhouse, installed at setup; adding it
to a running cluster's config re-runs setup only (Ray keeps running), and a job imports it on
a worker.

Each host's runtime is its own venv at ~/.rayctl/runtime (the default), layered on this
venv's packages so that it has this rayctl and Ray without installing them: rayctl finds the
same runtime there and pip installs just the missing package into that host's venv."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from rayctl.paths import ray_token_file
from rayctl.runtime.ray_adapter import list_ray_nodes
from tests.conftest import unique_name
from tests.sshhosts import HostNetwork

pytestmark = pytest.mark.integration

PACKAGE = "rayctl_probe_pkg"
VERSION = "1.0"
# Imports the package on a worker node (the head has no CPU, the task needs one).
JOB = f"""\
import socket, ray
ray.init()

@ray.remote(num_cpus=1)
def probe():
    import {PACKAGE}
    return socket.gethostname(), {PACKAGE}.__file__, {PACKAGE}.VALUE

print("probe:", ray.get(probe.remote(), timeout=120))
"""


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_tiny_wheel(directory: Path) -> Path:
    """A pure-Python wheel of one module, as pip wants it (METADATA, WHEEL, RECORD)."""
    info = f"{PACKAGE}-{VERSION}.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": b'VALUE = "from the wheelhouse"\n',
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n".encode()
        ),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = directory / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def layered_runtime(home: Path) -> Path:
    """A venv at `home`/.rayctl/runtime that sees this venv's packages (rayctl, Ray, pip) but
    installs into its own, with its own `ray` and `rayctl` scripts; its python."""
    venv = home / ".rayctl" / "runtime"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    this = sysconfig.get_path("purelib")
    (own / "zz_this_venv.pth").write_text(f"import site; site.addsitedir({this!r})\n")
    for script in ("ray", "rayctl"):
        text = (Path(sys.executable).parent / script).read_text().split("\n", 1)[1]
        (venv / "bin" / script).write_text(f"#!{python}\n{text}")
        (venv / "bin" / script).chmod(0o755)
    return python


def test_a_package_only_the_nodes_get_installed_from_the_wheelhouse_at_setup(
    host_network: HostNetwork, tmp_path: Path, rayctl_home: Path, cli
):
    head, worker = host_network.hosts[:2]
    house = tmp_path / "wheelhouse"
    house.mkdir()
    build_tiny_wheel(house)
    runtimes = [layered_runtime(host.home) for host in (head, worker)]
    here = subprocess.run([sys.executable, "-c", f"import {PACKAGE}"], capture_output=True)
    assert here.returncode != 0  # only the nodes get it
    name = unique_name("pkgs")
    config = {
        "cluster_name": name,
        "max_workers": 1,
        "provider": {"type": "ssh", "head_ip": head.address, "worker_ips": [worker.address]},
        "auth": {"ssh_user": "root", "ssh_private_key": str(host_network.client_key)},
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "worker": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 1},
        },
        "head_node_type": "head",
        "rayctl": {"runtime": {"wheelhouse": str(house)}},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        first = cli("up", path, "--yes", "--json")
        assert first.code == 0, first.text
        for python in runtimes:  # nothing to install: the runtime was there
            assert not list(python.parent.parent.glob(f"lib/*/site-packages/{PACKAGE}"))
        token = ray_token_file(rayctl_home, name)
        gcs = json.loads(cli("status", path, "--json").out)["gcs_address"]
        before = sorted(n.ray_node_id for n in list_ray_nodes(gcs, token_file=token) if n.alive)

        config["rayctl"]["runtime"]["packages"] = [f"{PACKAGE}=={VERSION}"]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        again = cli("up", path, "--yes", "--json")
        assert again.code == 0, again.text
        outcomes = json.loads(again.out)["outcomes"]
        assert outcomes == {head.address: "set up again", worker.address: "set up again"}
        # The same Ray nodes: setup ran again, Ray was not restarted, no node replaced.
        after = sorted(n.ray_node_id for n in list_ray_nodes(gcs, token_file=token) if n.alive)
        assert after == before
        for python in runtimes:  # each host's own venv got it, from the wheelhouse
            [installed] = python.parent.parent.glob(f"lib/*/site-packages/{PACKAGE}")
            assert (installed / "__init__.py").is_file()
        job = tmp_path / "probe.py"
        job.write_text(JOB)
        submitted = cli("submit", path, job)
        assert submitted.code == 0, submitted.text
        site = runtimes[1].parent.parent
        assert f"probe: ('{worker.name}', '{site}/lib/" in submitted.out, submitted.out
        assert "'from the wheelhouse')" in submitted.out
    finally:
        cli("down", path, "--yes")
        for host in (head, worker):
            shutil.rmtree(host.home / ".rayctl", ignore_errors=True)
