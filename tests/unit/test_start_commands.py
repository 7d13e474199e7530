"""Ray-style start commands: what rayctl changes so that its monitor is the only autoscaler,
the GCS port a head's commands choose, and the warnings `validate` prints for Ray's own
example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayctl.config.start_commands import gcs_port, only_rayctl_autoscales

CORPUS = Path(__file__).resolve().parents[1] / "configs" / "ray_format"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "ulimit -n 65536; ray start --head --port=6379 --object-manager-port=8076 "
            "--autoscaling-config=~/ray_bootstrap_config.yaml --dashboard-host=0.0.0.0",
            "ulimit -n 65536; ray start --no-monitor --head --port=6379 "
            "--object-manager-port=8076 --dashboard-host=0.0.0.0",
        ),
        (  # the two-word form of the flag
            "ray start --head --autoscaling-config ~/ray_bootstrap_config.yaml --port=6379",
            "ray start --no-monitor --head --port=6379",
        ),
        (
            "exec /v/bin/ray start --block --head",
            "exec /v/bin/ray start --no-monitor --block --head",
        ),
        # already without Ray's monitor, a worker, or no `ray start` at all: unchanged
        ("ray start --head --no-monitor", "ray start --head --no-monitor"),
        ("ray start --address=$RAY_HEAD_IP:6379", "ray start --address=$RAY_HEAD_IP:6379"),
        ("ray stop", "ray stop"),
        ("echo --head", "echo --head"),
        ("xray start --head", "xray start --head"),
        ("ray start --headless", "ray start --headless"),
    ],
)
def test_head_commands_run_without_rays_autoscaler(command: str, expected: str) -> None:
    assert only_rayctl_autoscales(command) == expected


def test_the_gcs_port_is_the_head_commands_port() -> None:
    assert gcs_port(["ray stop", "ulimit -n 65536; ray start --head --port=6380"]) == 6380
    assert gcs_port(["ray start --head --port 7000 --block"]) == 7000
    assert gcs_port(["ray start --head"]) is None
    assert gcs_port(["ray start --address=h:6379 --port=6390"]) is None  # not a head
    assert gcs_port(["ray start --head --dashboard-port=8266"]) is None


@pytest.mark.parametrize(("name", "line"), [("aws/full", 53), ("onprem/full", 33)])
def test_rays_example_head_commands_validate_with_a_warning(name: str, line: int, cli) -> None:
    path = CORPUS / f"{name}.yaml"
    result = cli("validate", path)
    assert result.code == 0, result.err
    assert (
        f"warning: {path}:{line}:5: head_start_ray_commands[1]: rayctl's monitor is the "
        "cluster's only autoscaler: this `ray start --head` runs with --no-monitor and "
        "without --autoscaling-config"
    ) in result.err.splitlines()
    assert "worker_start_ray_commands" not in result.err
