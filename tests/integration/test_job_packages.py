"""`rayctl submit --pip`: a package only the job needs, installed by Ray from the cluster's
wheelhouse (no index) and imported by a task on a worker node; a package that is not there is
a clear error naming it, exit 1."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

JOB = """\
import socket, ray

@ray.remote(num_cpus=1)  # the head has no CPU: this runs on a worker
def probe():
    import rayctl_probe_pkg
    return rayctl_probe_pkg.VALUE, ray.util.get_node_ip_address()

value, ip = ray.get(probe.remote())
print("probe", value, ip)
"""


def tiny_wheel(wheelhouse: Path) -> None:
    """rayctl_probe_pkg 1.0, a pure-Python wheel no index has, into `wheelhouse`."""
    info = "rayctl_probe_pkg-1.0.dist-info"
    files = {
        "rayctl_probe_pkg/__init__.py": 'VALUE = "from-the-wheelhouse"\n',
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: rayctl-probe-pkg\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    wheelhouse.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheelhouse / "rayctl_probe_pkg-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


def test_submit_pip_installs_from_the_wheelhouse_for_a_worker(
    make_cluster, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Ray tries a failing runtime env 3 times by default (minutes here): once is enough.
    monkeypatch.setenv("RUNTIME_ENV_RETRY_TIMES", "1")
    wheelhouse = tmp_path / "wheelhouse"
    tiny_wheel(wheelhouse)
    cluster = make_cluster(
        "pip",
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 0}},
            "ray.worker.cpu": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 1},
        },
        rayctl={"runtime": {"wheelhouse": str(wheelhouse)}},
    )
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    nodes = cluster.status(cli)["nodes"]
    worker_ip = next(n["ip"] for n in nodes if n["kind"] == "worker")
    job = tmp_path / "job.py"
    job.write_text(JOB)

    ran = cli("submit", "--pip", "rayctl-probe-pkg==1.0", cluster.config, job)
    assert ran.code == 0, ran.text
    assert f"probe from-the-wheelhouse {worker_ip}" in ran.out

    env = json.dumps({"pip": ["rayctl-probe-pkg==1.0"]})
    missing = cli(
        "submit", "--runtime-env", env, "--pip", "rayctl-no-such-pkg", cluster.config, job
    )
    assert missing.code == 1, missing.text
    assert f"pip found no rayctl-no-such-pkg in the wheelhouse ({wheelhouse.resolve()}" in (
        missing.err
    )
    assert "add its wheel" in missing.err
    assert "probe" not in missing.out  # the program never ran
