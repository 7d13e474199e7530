"""Autostop's idle decision with an injected clock, the monitor acting on it (fake provider,
no Ray), and the settings: config key, provider check, `up --autostop` flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from rayctl.autoscaler.autostop import Activity, IdleClock
from rayctl.autoscaler.monitor import Autostop, Monitor
from rayctl.autoscaler.status import AutoscalerStatus
from rayctl.config.loader import check_autostop
from rayctl.config.provider_spec import ProviderSpec
from rayctl.config.schema import AutostopSettings, Capabilities, ProviderSettings
from rayctl.providers import registry
from rayctl.runtime.ray_adapter import ClusterSnapshot, RayActivity, RayNode
from tests.unit.test_reconciler import CPU1, Clock, Sim

IDLE = Activity()


def test_the_clock_stops_exactly_at_the_timeout():
    clock = Clock()
    idle = IdleClock(60, clock)
    idle.observe(IDLE)
    clock.advance(59.999)
    idle.observe(IDLE)
    assert not idle.due()
    assert idle.left_s() == pytest.approx(0.001)
    clock.advance(0.001)
    assert idle.due()
    assert idle.left_s() == 0


@pytest.mark.parametrize(
    "busy",
    [
        Activity(jobs=("rayctl-job-1",)),
        Activity(drivers=1),
        Activity(pending=1),
        Activity(busy_nodes=("worker-1",)),
        Activity(unknown="Ray at 127.0.0.2:1 did not answer"),
    ],
)
def test_any_activity_resets_the_clock(busy: Activity):
    clock = Clock()
    idle = IdleClock(60, clock)
    idle.observe(IDLE)
    clock.advance(50)
    idle.observe(busy)
    assert idle.busy is not None
    assert idle.idle_s() is None and idle.left_s() is None
    clock.advance(50)  # 100 s since it first was idle, but busy in between
    idle.observe(IDLE)
    assert not idle.due()
    clock.advance(59)
    assert not idle.due()
    clock.advance(1)
    assert idle.due()


def test_activity_from_ray():
    def node(name: str, status: str) -> RayNode:
        return RayNode(name, "t", "127.0.0.2", status, 0.0, dict(CPU1), {})

    quiet = ClusterSnapshot(nodes=[node("head", "IDLE"), node("dead", "DEAD")])
    assert Activity.of(quiet, RayActivity(jobs=[], drivers=0)).reason is None
    busy = ClusterSnapshot(nodes=[node("head", "IDLE"), node("w1", "RUNNING")])
    assert Activity.of(busy, RayActivity(jobs=[], drivers=0)).reason == "node(s) busy: w1"
    waiting = ClusterSnapshot(nodes=[], placement_groups=[("PACK", [dict(CPU1)])])
    assert Activity.of(waiting, RayActivity(jobs=[], drivers=0)).pending == 1
    job = Activity.of(quiet, RayActivity(jobs=["j1"], drivers=0))
    assert job.reason == "job(s) running: j1"


class Stops:
    def __init__(self, *, fail: int = 0) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError("the provider refused")


def _monitor(
    sim: Sim, tmp_path: Path, stop: Stops, ray: list[RayActivity], *, down: bool
) -> Monitor:
    settings = AutostopSettings(idle_minutes=1, down=down)
    return Monitor(
        sim.reconciler,
        snapshot=sim.ray.snapshot,
        lease_path=tmp_path / "lease",
        status_path=tmp_path / "status.json",
        tick_s=0,
        autostop=Autostop(settings, IdleClock(60, sim.clock), lambda _: ray[0], stop),
    )


def test_the_monitor_stops_an_idle_cluster_once_after_the_timeout(tmp_path: Path):
    sim = Sim(tmp_path)
    stop = Stops()
    ray = [RayActivity(jobs=["job-1"], drivers=0)]
    monitor = _monitor(sim, tmp_path, stop, ray, down=False)
    monitor.step()
    sim.clock.advance(120)  # a job runs: no countdown
    monitor.step()
    status = AutoscalerStatus.model_validate_json((tmp_path / "status.json").read_bytes())
    assert status.autostop is not None
    assert status.autostop.busy == "job(s) running: job-1" and status.autostop.left_s is None
    ray[0] = RayActivity(jobs=[], drivers=0)  # the job ended
    monitor.step()
    sim.clock.advance(59)
    monitor.step()
    assert stop.calls == 0 and not monitor.finished
    status = AutoscalerStatus.model_validate_json((tmp_path / "status.json").read_bytes())
    assert status.autostop is not None and status.autostop.left_s == pytest.approx(1)
    sim.clock.advance(1)
    monitor.step()
    assert stop.calls == 1 and monitor.finished
    status = AutoscalerStatus.model_validate_json((tmp_path / "status.json").read_bytes())
    assert status.autostop is not None and status.autostop.stopped_at is not None
    monitor.close()


def test_a_failed_autostop_is_tried_again_and_removing_writes_no_status(tmp_path: Path):
    sim = Sim(tmp_path)
    stop = Stops(fail=1)
    monitor = _monitor(sim, tmp_path, stop, [RayActivity(jobs=[], drivers=0)], down=True)
    monitor.step()
    sim.clock.advance(60)
    monitor.step()
    assert stop.calls == 1 and not monitor.finished
    assert monitor.error == "autostop failed: RuntimeError: the provider refused"
    (tmp_path / "status.json").unlink()
    monitor.step()
    assert stop.calls == 2 and monitor.finished
    # With down the status document's directory went with the cluster: none is written.
    assert not (tmp_path / "status.json").exists()
    monitor.close()


def _config(tmp_path: Path, provider: dict, autostop: dict | None) -> Path:
    path = tmp_path / "cluster.yaml"
    raw: dict = {"cluster_name": "as", "provider": provider}
    if autostop is not None:
        raw["rayctl"] = {"autostop": autostop}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


AWS = {"type": "aws", "region": "us-west-2"}
GCP = {"type": "gcp", "region": "us-west1", "availability_zone": "us-west1-a", "project_id": "p"}


def test_the_config_key_takes_fractions_of_minutes(tmp_path: Path):
    local = registry.load_config(_config(tmp_path, {"type": "local"}, {"idle_minutes": 0.1}))
    assert local.config.rayctl.autostop == AutostopSettings(idle_minutes=0.1, down=False)


def _rayctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rayctl", *args], capture_output=True, text=True, timeout=120
    )


def test_autostop_is_refused_where_the_head_cannot_remove_the_cluster(tmp_path: Path):
    path = _config(tmp_path, GCP, {"idle_minutes": 30, "down": True})
    result = _rayctl("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{path}:" in result.stderr and "rayctl.autostop" in result.stderr
    assert "the gcp provider has no autostop yet" in result.stderr
    bad = _config(tmp_path, {"type": "local"}, {"idle_minutes": 0})
    result = _rayctl("validate", str(bad))
    assert result.returncode == 2 and "idle_minutes" in result.stderr, result.stderr


class _Removes(ProviderSettings):
    capabilities: ClassVar[Capabilities] = Capabilities(removes_itself=True)


def test_autostop_without_down_needs_a_provider_that_stops_nodes():
    removes = ProviderSpec(kind="removes", model=_Removes, factory="x:y")
    stops = ProviderSpec(kind="local", model=registry.specs()["local"].model, factory="x:y")
    keep = AutostopSettings(idle_minutes=1)
    assert "cannot stop nodes" in (check_autostop(keep, removes) or "")
    assert check_autostop(keep.model_copy(update={"down": True}), removes) is None
    assert check_autostop(keep, stops) is None
    assert check_autostop(None, removes) is None


def test_ssh_hosts_take_autostop_with_and_without_down():
    """The head stops Ray on the hosts and keeps them, or releases them, its own last."""
    ssh = registry.specs()["ssh"]
    keep = AutostopSettings(idle_minutes=1)
    assert check_autostop(keep, ssh) is None
    assert check_autostop(keep.model_copy(update={"down": True}), ssh) is None


def test_docker_mode_on_ssh_hosts_takes_autostop_without_down_only(tmp_path: Path):
    """Its head's autoscaler runs in the container that `down` would have to remove."""
    ssh = {"type": "ssh", "head_ip": "10.0.0.2", "worker_ips": ["10.0.0.3"]}
    docker = {"image": "rayproject/ray:2.60.0", "container_name": "ray"}
    path = _config(tmp_path, ssh, {"idle_minutes": 1, "down": True})
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "auth": {"ssh_user": "me"}, "docker": docker}))
    (refused,) = registry.load_config(path).unsupported
    assert "rayctl.autostop.down" in refused and "not supported on ssh hosts yet" in refused
    raw["rayctl"]["autostop"]["down"] = False
    path.write_text(yaml.safe_dump({**raw, "auth": {"ssh_user": "me"}, "docker": docker}))
    assert registry.load_config(path).unsupported == ()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--autostop", "0"], "above 0"),
        (["--autostop", "nan"], "above 0"),
        (["--down"], "--down goes with --autostop"),
    ],
)
def test_bad_autostop_flags_exit_2_before_anything_is_created(
    tmp_path: Path, flags: list[str], message: str
):
    path = _config(tmp_path, {"type": "local"}, {"idle_minutes": 1})
    result = _rayctl("up", str(path), *flags)
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr


def test_the_autostop_flag_is_refused_on_gcp(tmp_path: Path):
    path = _config(tmp_path, GCP, None)
    result = _rayctl("up", str(path), "--autostop", "5", "--down")
    assert result.returncode == 2, result.stderr
    assert "has no autostop yet" in " ".join(result.stderr.split()), result.stderr


def test_aws_takes_autostop_with_down_only(tmp_path: Path):
    """The AWS head removes its cluster (tests/unit/test_aws_autostop.py); stopped instances
    to resume later are not offered: without `down` validate says what to do."""
    ok = _rayctl("validate", str(_config(tmp_path, AWS, {"idle_minutes": 5, "down": True})))
    assert ok.returncode == 0, ok.stderr
    keep = _config(tmp_path, AWS, {"idle_minutes": 5})
    result = _rayctl("validate", str(keep))
    assert result.returncode == 2, result.stderr
    assert f"{keep}:" in result.stderr and "rayctl.autostop" in result.stderr
    assert "--autostop MINUTES --down" in " ".join(result.stderr.split()), result.stderr
    result = _rayctl("up", str(_config(tmp_path, AWS, None)), "--autostop", "5")
    assert result.returncode == 2, result.stderr
    assert "cannot stop nodes" in " ".join(result.stderr.split()), result.stderr
