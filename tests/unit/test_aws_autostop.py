"""Autostop on AWS, against moto in-process. With `down`, the head's monitor removes its own
cluster (ops.down with by_monitor, as the monitor runs it) in the order a head can: it leaves
the cluster's security group before deleting it, terminates itself, and deletes the role it
runs with last, calling nothing its policy does not allow. Without, it stops the instances
(the workers', then its own), `status` reads the stopped cluster from the tags without
reaching it, `up` starts what it needs and `down` removes it whole."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from rayctl.config.loader import LoadedConfig
from rayctl.errors import AuthError
from rayctl.ops import autostop as autostop_module
from rayctl.ops import down as down_module
from rayctl.ops import status as status_module
from rayctl.ops import up as up_module
from rayctl.ops.autostop import autostop
from rayctl.ops.down import down
from rayctl.ops.status import cluster_status
from rayctl.providers.aws import setup as aws_setup
from rayctl.providers.aws.instances import AWSProvider
from rayctl.providers.base import NodeKind, Tag
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime.bootstrap import NodeSpec
from rayctl.runtime.runner import CommandResult
from tests.unit.test_aws_provider import (
    IMAGE,
    NOTHING,
    aws,  # noqa: F401 (a fixture)
    calls,
    cluster_resources,
    fail_when,
    instance,
    launch_tags,
    load,
)


def record(*clients: Any) -> list[str]:
    """Every call the clients make, in order, as `service:Action` (the request's own name)."""
    seen: list[str] = []
    for client in clients:
        service = client.meta.service_model.service_name

        def note(params: dict[str, Any], service: str = service, **_: Any) -> None:
            seen.append(f"{service}:{params['body']['Action']}")

        client.meta.events.register(f"before-call.{service}", note)
    return seen


def policy_allows(policy: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement names `action` (wildcards as IAM matches them)."""
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions):
            return True
    return False


def the_heads_provider(
    loaded: LoadedConfig, home: Path, monkeypatch: pytest.MonkeyPatch
) -> AWSProvider:
    """The provider `down` makes on the head (not bootstrapped), handed to it so that the
    test can watch its clients."""
    on_head = make_provider(loaded.config, home=home)
    assert isinstance(on_head, AWSProvider)
    monkeypatch.setattr(down_module, "make_provider", lambda config, home: on_head)
    return on_head


def a_cluster(tmp_path: Path) -> tuple[AWSProvider, LoadedConfig]:
    """A bootstrapped cluster: a head, two running workers and a stopped (cached) one."""
    load(tmp_path)
    loaded = load_config(tmp_path / "cluster.yaml")
    provider = make_provider(loaded.config, home=tmp_path / "home")
    assert isinstance(provider, AWSProvider)
    provider.bootstrap()
    provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    workers = provider.create_nodes("worker", 3, launch_tags(NodeKind.WORKER))
    provider.terminate_nodes([workers[0].id])  # cached: stopped, not a node
    return provider, loaded


def test_the_head_removes_its_cluster_leaving_the_group_first_and_its_role_last(
    aws: None,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, loaded = a_cluster(tmp_path)
    (head,) = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    group = cluster_resources(provider)["groups"][0]
    (interface,) = instance(provider, head.id)["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == [group]
    document = provider.iam.get_role_policy(
        RoleName=provider.head_role, PolicyName=aws_setup.HEAD_POLICY_NAME
    )["PolicyDocument"]
    policy = json.loads(document) if isinstance(document, str) else document
    on_head = the_heads_provider(loaded, tmp_path / "head-home", monkeypatch)
    seen = record(on_head.ec2, on_head.iam)
    moves = calls(on_head.ec2, "ModifyNetworkInterfaceAttribute")
    terminations = []
    on_head.ec2.meta.events.register(
        "before-call.ec2.TerminateInstances",
        lambda params, **_: terminations.append(params["body"]),
    )

    report = down(loaded, home=tmp_path / "head-home", by_monitor=True)

    assert cluster_resources(provider) == NOTHING
    assert {n.kind for n in report.removed} == {NodeKind.HEAD, NodeKind.WORKER}
    # The head left the group for the VPC's default group before the group was deleted.
    vpc = instance(provider, head.id)["VpcId"]
    default = aws_setup.find_group(provider.ec2, vpc, "default")
    assert default is not None
    assert seen.index("ec2:ModifyNetworkInterfaceAttribute") < seen.index("ec2:DeleteSecurityGroup")
    assert [
        {k: v for k, v in m.items() if k.startswith(("NetworkInterfaceId", "SecurityGroupId"))}
        for m in moves
    ] == [
        {
            "NetworkInterfaceId": interface["NetworkInterfaceId"],
            "SecurityGroupId.1": default["GroupId"],
        }
    ]
    # It terminated itself after everything else of the cluster's EC2 was gone, and only
    # then deleted its profile and role: the last calls it makes.
    own = next(i for i, b in enumerate(terminations) if b.get("InstanceId.1") == head.id)
    assert own == len(terminations) - 1
    last_ec2 = max(i for i, call in enumerate(seen) if call.startswith("ec2:"))
    assert seen[last_ec2] == "ec2:TerminateInstances"
    assert seen.index("ec2:DeleteKeyPair") < last_ec2
    assert seen[last_ec2 + 1 :][-4:] == [
        "iam:RemoveRoleFromInstanceProfile",
        "iam:DeleteInstanceProfile",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
    ]
    denied = sorted({call for call in seen if not policy_allows(policy, call)})
    assert denied == [], f"the head's policy does not allow {denied}"


def test_what_a_head_stopped_midway_leaves_down_removes_and_up_starts_afresh(
    aws: None,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, loaded = a_cluster(tmp_path)
    on_head = the_heads_provider(loaded, tmp_path / "head-home", monkeypatch)
    # The head's instance went before it deleted its role (as a terminating instance may).
    fail_when(on_head.iam, "RemoveRoleFromInstanceProfile", "ExpiredToken")
    with pytest.raises(AuthError):
        down(loaded, home=tmp_path / "head-home", by_monitor=True)
    left = cluster_resources(provider)
    assert left["roles"] == [provider.head_role] and left["instances"] == []

    monkeypatch.setattr(down_module, "make_provider", make_provider)  # the laptop's own
    laptop = make_provider(loaded.config, home=tmp_path / "home")
    assert down(loaded, home=tmp_path / "home").removed == []
    assert cluster_resources(laptop) == NOTHING

    laptop.bootstrap()  # `up` after autostop: everything made again
    (head,) = laptop.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    assert laptop.list_nodes()[0].id == head.id
    assert cluster_resources(laptop)["roles"] == [laptop.head_role]


# -- without `down`: the head stops the instances, `status` reads the tags, `up` and `down` ----


def a_stoppable_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[AWSProvider, LoadedConfig, list[str]]:
    """A head and two workers of min_workers 1 (with the config's launch hashes) and a stopped
    cached worker; no node is ever reached (Ray is stopped by a stand-in that records the
    nodes, in order). Returns what Ray stopped on."""
    load(
        tmp_path,
        f"""\
        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}
            min_workers: 1
        head_node_type: head
        rayctl: {{autostop: {{idle_minutes: 1}}}}
        """,
    )
    loaded = load_config(tmp_path / "cluster.yaml")
    provider = make_provider(loaded.config, home=tmp_path / "home")
    assert isinstance(provider, AWSProvider)
    provider.bootstrap()
    for kind, node_type, count in ((NodeKind.HEAD, "head", 1), (NodeKind.WORKER, "worker", 3)):
        spec = NodeSpec.of(loaded.config, node_type, kind)
        nodes = provider.create_nodes(node_type, count, spec.launch_tags("req-1"))
    provider.terminate_nodes([nodes[0].id])  # cached: stopped, not a node
    # moto's instance addresses are not this test's to contact: no runner connects.
    monkeypatch.setattr(AWSProvider, "runner", lambda self, node: node)
    ray_stopped: list[str] = []

    def stop_ray(runner: object, slot: str, **_: object) -> CommandResult:
        ray_stopped.append(slot)
        return CommandResult(0, "")

    monkeypatch.setattr(autostop_module.detached, "stop", stop_ray)
    return provider, loaded, ray_stopped


def never_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking a node anything (over SSH, or its Ray) fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a node was reached: {args}")

    monkeypatch.setattr(AWSProvider, "runner", refuse)
    monkeypatch.setattr(status_module, "list_ray_nodes", refuse)


def test_autostop_stops_ray_then_the_workers_then_the_head_and_status_says_so(
    aws: None,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, loaded, ray_stopped = a_stoppable_cluster(tmp_path, monkeypatch)
    (head,) = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    workers = sorted(n.id for n in provider.list_nodes(**{Tag.KIND: NodeKind.WORKER.value}))
    document = provider.iam.get_role_policy(
        RoleName=provider.head_role, PolicyName=aws_setup.HEAD_POLICY_NAME
    )["PolicyDocument"]
    policy = json.loads(document) if isinstance(document, str) else document
    on_head = make_provider(loaded.config, home=tmp_path / "head-home")
    monkeypatch.setattr(autostop_module, "make_provider", lambda config, home: on_head)
    seen = record(on_head.ec2)
    stops = calls(on_head.ec2, "StopInstances")

    autostop(loaded, home=tmp_path / "head-home")

    assert ray_stopped[-1] == head.id and sorted(ray_stopped[:-1]) == workers
    assert [sorted(s[k] for k in s if k.startswith("InstanceId")) for s in stops] == [
        workers,
        [head.id],
    ]
    assert seen.index("ec2:CreateTags") < seen.index("ec2:StopInstances")
    assert {instance(provider, i)["State"]["Name"] for i in [head.id, *workers]} == {"stopped"}
    denied = sorted({call for call in seen if not policy_allows(policy, call)})
    assert denied == [], f"the head's policy does not allow {denied}"

    never_reached(monkeypatch)  # the head is stopped: it would not answer
    status = cluster_status(loaded, home=tmp_path / "home")
    assert [(n.kind, n.state) for n in status.nodes] == [("head", "stopped")] + [
        ("worker", "stopped")
    ] * 3
    assert status.autostop is not None and status.autostop.stopped_at is not None
    assert (status.autostop.down, status.autostop.idle_minutes) == (False, 1)
    assert not status.ray_reachable and "`rayctl up` starts it" in (status.ray_error or "")

    report = down(loaded, home=tmp_path / "home")  # a stopped cluster goes whole
    assert len(report.removed) == 4
    assert cluster_resources(provider) == NOTHING


def test_up_starts_the_stopped_head_and_min_workers_of_the_stopped_workers(
    aws: None,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, loaded, _ = a_stoppable_cluster(tmp_path, monkeypatch)
    running = sorted(n.id for n in provider.list_nodes())
    provider.stop_nodes(running)
    assert provider.list_nodes() == []
    starts = calls(provider.ec2, "StartInstances")

    up_module._resume(loaded.config, provider)

    (started,) = starts
    ids = sorted(started[k] for k in started if k.startswith("InstanceId"))
    assert len(ids) == 2 and ids == sorted(n.id for n in provider.list_nodes())
    assert {n.kind for n in provider.list_nodes()} == {NodeKind.HEAD, NodeKind.WORKER}
    assert len(provider.stopped_nodes()) == 2  # the other worker and the cached one
