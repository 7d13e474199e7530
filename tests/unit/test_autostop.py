"""Autostop's idle decision with an injected clock, the monitor acting on it (fake provider,
no Ray), and the settings: config key, provider check, `up --autostop` flag."""

from __future__ import annotations

import dataclasses
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
from rayctl.ops.up import to_resume
from rayctl.providers import registry
from rayctl.providers.base import Node, NodeKind, NodeState, Tag
from rayctl.runtime.bootstrap import NodeSpec
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
    raw: dict = {"cluster_name": "as", "provider": provider, "auth": {"ssh_user": "ray"}}
    if autostop is not None:
        raw["rayctl"] = {"autostop": autostop}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


AWS = {"type": "aws", "region": "us-west-2"}
GCP = {"type": "gcp", "region": "us-west1", "availability_zone": "us-west1-a", "project_id": "p"}
AZURE = {"type": "azure", "location": "westus2", "resource_group": "rg"}
FAKE = {"type": "fake"}


def test_the_config_key_takes_fractions_of_minutes(tmp_path: Path):
    local = registry.load_config(_config(tmp_path, {"type": "local"}, {"idle_minutes": 0.1}))
    assert local.config.rayctl.autostop == AutostopSettings(idle_minutes=0.1, down=False)


def _rayctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rayctl", *args], capture_output=True, text=True, timeout=120
    )


def test_autostop_is_refused_where_the_head_can_neither_remove_nor_stop(tmp_path: Path):
    path = _config(tmp_path, FAKE, {"idle_minutes": 30, "down": True})
    result = _rayctl("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{path}:" in result.stderr and "rayctl.autostop" in result.stderr
    assert "the fake provider has no autostop yet" in result.stderr
    bad = _config(tmp_path, {"type": "local"}, {"idle_minutes": 0})
    result = _rayctl("validate", str(bad))
    assert result.returncode == 2 and "idle_minutes" in result.stderr, result.stderr


class _Removes(ProviderSettings):
    capabilities: ClassVar[Capabilities] = Capabilities(removes_itself=True)


class _Stops(ProviderSettings):
    capabilities: ClassVar[Capabilities] = Capabilities(stops_nodes=True)


def test_autostop_takes_what_the_provider_can_do():
    removes = ProviderSpec(kind="removes", model=_Removes, factory="x:y")
    stops = ProviderSpec(kind="stops", model=_Stops, factory="x:y")
    both = ProviderSpec(kind="local", model=registry.specs()["local"].model, factory="x:y")
    keep = AutostopSettings(idle_minutes=1)
    remove = keep.model_copy(update={"down": True})
    assert "cannot stop nodes" in (check_autostop(keep, removes, docker=False) or "")
    assert check_autostop(remove, removes, docker=False) is None
    assert "cannot remove the cluster itself" in (check_autostop(remove, stops, docker=False) or "")
    assert check_autostop(keep, stops, docker=False) is None
    assert (
        check_autostop(keep, both, docker=False) is None
        and check_autostop(remove, both, docker=False) is None
    )
    assert check_autostop(None, removes, docker=False) is None
    assert check_autostop(remove, removes, docker=True) is None  # removes itself in docker too


def test_ssh_hosts_take_autostop_with_and_without_down():
    """The head stops Ray on the hosts and keeps them, or releases them, its own last."""
    ssh = registry.specs()["ssh"]
    keep = AutostopSettings(idle_minutes=1)
    assert check_autostop(keep, ssh, docker=False) is None
    remove = keep.model_copy(update={"down": True})
    assert check_autostop(remove, ssh, docker=False) is None
    assert check_autostop(keep, ssh, docker=True) is None
    assert "in docker mode" in (check_autostop(remove, ssh, docker=True) or "")


def test_docker_mode_on_ssh_hosts_takes_autostop_without_down_only(tmp_path: Path):
    """Its head's autoscaler runs in the container that `down` would have to remove: refused
    in the config and as `up --autostop M --down`, before anything is created."""
    ssh = {"type": "ssh", "head_ip": "10.0.0.2", "worker_ips": ["10.0.0.3"]}
    docker = {"image": "rayproject/ray:2.60.0", "container_name": "ray"}
    path = _config(tmp_path, ssh, {"idle_minutes": 1, "down": True})
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "auth": {"ssh_user": "me"}, "docker": docker}))
    result = _rayctl("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{path}:" in result.stderr and "rayctl.autostop" in result.stderr
    assert "in docker mode is not supported by the ssh provider" in result.stderr
    raw["rayctl"]["autostop"]["down"] = False
    path.write_text(yaml.safe_dump({**raw, "auth": {"ssh_user": "me"}, "docker": docker}))
    assert registry.load_config(path).config.rayctl.autostop is not None
    result = _rayctl("up", str(path), "--autostop", "1", "--down", "--yes")
    assert result.returncode == 2, result.stderr
    assert "in docker mode is not supported" in " ".join(result.stderr.split()), result.stderr


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


def test_the_autostop_flag_is_refused_where_there_is_no_autostop(tmp_path: Path):
    path = _config(tmp_path, FAKE, None)
    result = _rayctl("up", str(path), "--autostop", "5", "--down")
    assert result.returncode == 2, result.stderr
    assert "has no autostop yet" in " ".join(result.stderr.split()), result.stderr


@pytest.mark.parametrize("provider", [AWS, GCP, AZURE], ids=["aws", "gcp", "azure"])
def test_the_clouds_take_autostop_with_and_without_down(tmp_path: Path, provider: dict):
    """Their heads remove the cluster (tests/unit/test_aws_autostop.py, test_gcp_autostop.py,
    test_azure_autostop.py) or stop the instances for a later `up` (providers.base.StopsNodes)."""
    for down in (True, False):
        loaded = registry.load_config(
            _config(tmp_path, provider, {"idle_minutes": 5, "down": down})
        )
        assert loaded.config.rayctl.autostop == AutostopSettings(idle_minutes=5, down=down)


# -- `up` after autostop stopped the machines: what it starts --------------------------------


def _node(node_id: str, kind: NodeKind, node_type: str, launch_hash: str) -> Node:
    tags = {Tag.KIND: kind.value, Tag.NODE_TYPE: node_type, Tag.LAUNCH_HASH: launch_hash}
    return Node(node_id, node_type, kind, NodeState.STOPPED, "10.0.0.1", None, tags)


def test_up_starts_the_stopped_head_and_the_workers_min_workers_needs(tmp_path: Path):
    path = tmp_path / "cluster.yaml"
    machine = {"InstanceType": "m5.large"}
    types = {
        "head": {"node_config": machine},
        "a": {"node_config": machine, "min_workers": 2},
        "b": {"node_config": {"InstanceType": "m5.xlarge"}},
    }
    raw = {"cluster_name": "r", "provider": AWS, "available_node_types": types}
    path.write_text(yaml.safe_dump({**raw, "head_node_type": "head"}))
    config = registry.load_config(path).config
    head_hash = NodeSpec.of(config, "head", NodeKind.HEAD).launch_hash
    a_hash = NodeSpec.of(config, "a", NodeKind.WORKER).launch_hash
    b_hash = NodeSpec.of(config, "b", NodeKind.WORKER).launch_hash
    head = _node("h", NodeKind.HEAD, "head", head_hash)
    workers = [
        _node("w3", NodeKind.WORKER, "a", a_hash),
        _node("w1", NodeKind.WORKER, "a", a_hash),
        _node("w2", NodeKind.WORKER, "a", a_hash),
        _node("w0", NodeKind.WORKER, "a", "an-older-node-config"),
        _node("w4", NodeKind.WORKER, "b", b_hash),  # b needs none
        _node("w5", NodeKind.WORKER, "gone", a_hash),  # a type no longer in the config
    ]
    assert to_resume(config, [head, *workers], []) == ["h", "w1", "w2"]
    # Workers that run already count: min_workers 2 needs one more.
    running = [_node("r1", NodeKind.WORKER, "a", a_hash), _node("r2", NodeKind.WORKER, "b", b_hash)]
    assert to_resume(config, [head, *workers], running) == ["h", "w1"]
    stale = _node("r0", NodeKind.WORKER, "a", "an-older-node-config")
    assert to_resume(config, [head, *workers], [stale, *running]) == ["h", "w1"]
    assert to_resume(config, [head, *workers], running * 2) == ["h"]
    # No stopped head, or a running one: not a stopped cluster (its stopped workers are
    # cached ones, for launches to reuse).
    assert to_resume(config, workers, []) == []
    running_head = dataclasses.replace(head, id="h2", state=NodeState.RUNNING)
    assert to_resume(config, [head, *workers], [running_head]) == []
