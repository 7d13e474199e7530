"""Configs in Ray's own format (tests/configs/ray_format: one per shape of Ray 2.60's example
configs) validate offline, and mean what they mean to Ray: the head type Ray fills in, SSH
from anywhere and nothing else, Deep Learning AMIs resolved at launch, network interfaces
launched as given, the legacy top-level min_workers; what rayctl accepts but does not
implement yet is refused by `up` before anything exists."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

import rayctl.ops.up
from rayctl.errors import AuthError, ProviderError
from rayctl.providers.aws import setup as aws_setup
from rayctl.providers.aws.instances import AWSProvider
from rayctl.providers.base import NodeKind
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime.ssh_runner import SSHRunner
from tests.conftest import write_private_key
from tests.unit.test_aws_provider import REGION, aws, group_of, instance, launch_tags  # noqa: F401

CORPUS = Path(__file__).resolve().parents[1] / "configs" / "ray_format"
CONFIGS = sorted(CORPUS.glob("*/*.yaml"))
DLAMI_IN_MOTO = "ami-dca37ea5"  # moto's "Deep Learning AMI Ubuntu Linux - 2.4_Oct2017"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network and an empty home (no ~/.ssh keys): validation must need neither."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"validation opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAYCTL_HOME", str(home / ".rayctl"))
    return home


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_corpus_has_every_shape() -> None:
    names = {f"{p.parent.name}/{p.stem}" for p in CONFIGS}
    assert names == {
        "aws/minimal", "aws/full", "aws/java", "aws/ml", "aws/multi-node-type",
        "aws/launch-templates", "aws/cloudwatch", "aws/network-interfaces", "aws/gpu",
        "onprem/minimal-manual", "onprem/full", "onprem/minimal-automatic",
        "gcp/minimal", "gcp/truly-minimal", "gcp/full", "gcp/gpu", "gcp/tpu",
        "azure/minimal", "azure/full", "azure/availability-zones", "azure/gpu",
    }  # fmt: skip


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_ray_format_config_validates_offline(path: Path, offline: Path, cli) -> None:
    result = cli("validate", path)
    assert result.code == 0, result.err
    assert "valid." in result.out
    assert not (offline / ".rayctl").exists()


@pytest.mark.parametrize(
    ("shape", "head_image", "worker_image"),
    [
        ("aws/full", "rayproject/ray-ml:latest-gpu", "rayproject/ray-ml:latest-gpu"),
        ("gcp/full", "rayproject/ray-ml:latest-gpu", "rayproject/ray-ml:latest-gpu"),
        ("azure/full", "rayproject/ray-ml:latest-gpu", "rayproject/ray-ml:latest-gpu"),
        ("aws/gpu", "rayproject/ray:latest-gpu", "rayproject/ray:latest-gpu"),
        ("gcp/gpu", "rayproject/ray-ml:latest-gpu", "rayproject/ray:latest-gpu"),
        ("azure/gpu", "rayproject/ray-ml:latest-cpu", "rayproject/ray-ml:latest-gpu"),
    ],
)
def test_docker_mode_examples_choose_each_nodes_image(shape, head_image, worker_image) -> None:
    config = load_config(CORPUS / f"{shape}.yaml").config
    head = config.docker_for(config.head_node_type)
    assert head is not None and (head.head_image or head.image) == head_image
    for name in config.worker_types():
        if name != config.head_node_type:
            docker = config.docker_for(name)
            assert docker is not None and (docker.worker_image or docker.image) == worker_image


# --- head_node_type ----------------------------------------------------------------------


def test_missing_head_node_type_is_rays_default_head_type(tmp_path: Path) -> None:
    config = load_config(CORPUS / "aws" / "multi-node-type.yaml").config
    assert config.head_node_type == "ray.head.default"
    assert set(config.worker_types()) == {"cpu.4", "gpu.1"}
    onprem = load_config(CORPUS / "onprem" / "minimal-automatic.yaml").config
    assert onprem.head_node_type == "local.cluster.node"  # `head_node_type: {}`, as Ray


def test_missing_head_node_type_without_the_default_type_is_still_an_error(
    tmp_path: Path, cli
) -> None:
    path = write(
        tmp_path,
        """\
        provider: {type: aws, region: us-west-2}
        available_node_types:
          head: {node_config: {InstanceType: m5.large}}
        """,
    )
    result = cli("validate", path)
    assert result.code == 2
    assert "missing required key 'head_node_type' (one of: head)" in result.err


# --- legacy keys -------------------------------------------------------------------------


def test_top_level_min_workers_is_ignored_with_a_warning_as_in_ray(tmp_path: Path, cli) -> None:
    result = cli("validate", CORPUS / "aws" / "gpu.yaml")
    assert result.code == 0
    assert "gpu.yaml:4:1: min_workers: Ray 2.x ignores a top-level min_workers" in result.err
    config = load_config(CORPUS / "aws" / "gpu.yaml").config
    assert config.available_node_types["ray.worker.gpu"].min_workers == 0


def test_onprem_min_workers_is_the_hosts_min_workers_at_most_the_pool(tmp_path: Path) -> None:
    config = load_config(CORPUS / "onprem" / "full.yaml").config
    assert config.available_node_types["local.cluster.node"].min_workers == 3
    path = write(
        tmp_path,
        """\
        provider: {type: local, head_ip: 192.0.2.1, worker_ips: [192.0.2.2, 192.0.2.3]}
        auth: {ssh_user: ray}
        min_workers: 5
        """,
    )
    loaded = load_config(path)
    assert loaded.config.available_node_types["local.cluster.node"].min_workers == 2
    assert loaded.config.min_workers is None and loaded.warnings == ()


def test_empty_pre_2_0_keys_are_dropped_with_a_warning(tmp_path: Path, cli) -> None:
    path = write(tmp_path, "provider: {type: local}\nhead_node: {}\nworker_nodes: {}\n")
    result = cli("validate", path)
    assert result.code == 0
    assert "cluster.yaml:2:1: head_node: empty pre-2.0 key, ignored" in result.err
    assert "cluster.yaml:3:1: worker_nodes: empty pre-2.0 key, ignored" in result.err


# --- accepted, not implemented: validate warns, up refuses before anything ---------------


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("aws/cloudwatch", "cloudwatch.yaml:7:3: provider.cloudwatch: rayctl does not set up"),
        ("onprem/minimal-automatic", "minimal-automatic.yaml:5:3: provider.coordinator_address"),
        ("gcp/tpu", "tpu.yaml:28:5: available_node_types.ray_tpu.node_config: TPU VMs are not"),
    ],
)
def test_unsupported_parts_are_refused_by_up_before_anything(
    name: str, line: str, offline: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = CORPUS / f"{name}.yaml"
    validated = cli("validate", path)
    assert validated.code == 0
    assert line in validated.err and "(not supported yet: `up` refuses it)" in validated.err
    made: list[Any] = []
    monkeypatch.setattr(rayctl.ops.up, "make_provider", lambda *a, **k: made.append(a))
    upped = cli("up", path, "--yes")
    assert upped.code == 2
    refusals = [text for text in upped.err.splitlines() if not text.startswith("warning: ")]
    assert refusals[-1:] == [next(t for t in validated.err.splitlines() if line in t)[9:]
                             .removesuffix(" (not supported yet: `up` refuses it)")]  # fmt: skip
    assert made == [] and not (offline / ".rayctl").exists()


# --- SSH from anywhere, nothing else -----------------------------------------------------


def test_up_says_ssh_is_open_to_anywhere_in_one_line(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop(*args: Any, **kwargs: Any) -> None:
        raise ProviderError("stopped by the test")

    monkeypatch.setattr(rayctl.ops.up, "up", stop)
    result = cli("up", CORPUS / "aws" / "minimal.yaml", "--yes")
    warned = [t for t in result.err.splitlines() if "0.0.0.0/0" in t]
    assert warned == [
        f"warning: {CORPUS / 'aws' / 'minimal.yaml'}:5:1: provider: SSH (TCP 22) to the nodes "
        "is open to anywhere (0.0.0.0/0), as in Ray; narrow it with "
        "provider.ssh_source_cidrs: [YOUR.IP/32]"
    ]


@pytest.mark.usefixtures("aws")
def test_without_ssh_sources_only_ssh_is_open_to_anywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        cluster_name: test
        provider: {{type: aws, region: {REGION}}}
        available_node_types:
          ray.head.default: {{node_config: {{InstanceType: m5.large, ImageId: ami-1e749f67}}}}
        """,
    )
    p = make_provider(load_config(path).config, home=tmp_path / "home")
    assert isinstance(p, AWSProvider)
    p.bootstrap()
    group = group_of(p)
    assert aws_setup.rule_keys(group["IpPermissions"]) == {
        ("-1", None, None, "group", group["GroupId"]),
        ("tcp", 22, 22, "cidr", "0.0.0.0/0"),
    }


# --- latest_dlami --------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_latest_dlami_is_resolved_and_pinned_at_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's Deep Learning AMIs are older ones: look those up instead.
    monkeypatch.setitem(aws_setup.DLAMI_IMAGES, "x86_64", "Deep Learning AMI Ubuntu Linux - *")
    path = write(
        tmp_path,
        f"""\
        cluster_name: test
        provider: {{type: aws, region: {REGION}, ssh_source_cidrs: [203.0.113.7/32]}}
        available_node_types:
          ray.head.default: {{node_config: {{InstanceType: m5.large, ImageId: Latest_DLAMI}}}}
          other: {{node_config: {{InstanceType: m5.large, ImageId: ami-1e749f67}}}}
        """,
    )
    config = load_config(path).config
    p = make_provider(config, home=tmp_path / "home")
    assert isinstance(p, AWSProvider)
    p.bootstrap()
    tags = aws_setup.tag_dict(group_of(p)["Tags"])
    assert tags[f"{aws_setup.IMAGE_TAG}dlami-x86_64"] == DLAMI_IN_MOTO
    (head,) = p.create_nodes("ray.head.default", 1, launch_tags(NodeKind.HEAD))
    (other,) = p.create_nodes("other", 1, launch_tags(NodeKind.WORKER))
    assert instance(p, head.id)["ImageId"] == DLAMI_IN_MOTO
    assert instance(p, other.id)["ImageId"] == "ami-1e749f67"
    # The head's monitor launches the pinned image without looking it up again.
    monkeypatch.setitem(aws_setup.DLAMI_IMAGES, "x86_64", "nothing-matches-*")
    on_head = AWSProvider(config, home=tmp_path / "head-home")
    (again,) = on_head.create_nodes("ray.head.default", 1, launch_tags(NodeKind.WORKER))
    assert instance(on_head, again.id)["ImageId"] == DLAMI_IN_MOTO


@pytest.mark.usefixtures("aws")
def test_no_deep_learning_ami_is_a_clear_error_before_anything(tmp_path: Path) -> None:
    config = load_config(CORPUS / "aws" / "ml.yaml", cluster_name="test").config
    p = AWSProvider(config, home=tmp_path / "home")
    with pytest.raises(ProviderError, match=r"ray.head.default \(a Deep Learning AMI\)"):
        p.bootstrap()
    assert (
        p.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["rayctl-test"]}])[
            "SecurityGroups"
        ]
        == []
    )


# --- NetworkInterfaces -------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_network_interfaces_are_launched_as_given(tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.213.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.213.1.0/24")["Subnet"]["SubnetId"]
    efa = ec2.create_security_group(GroupName="efa", Description="efa", VpcId=vpc)["GroupId"]
    path = write(
        tmp_path,
        f"""\
        cluster_name: test
        provider: {{type: aws, region: {REGION}, use_internal_ips: true}}
        available_node_types:
          ray.head.default:
            node_config:
              InstanceType: m5.large
              ImageId: ami-1e749f67
              NetworkInterfaces:
                - {{DeviceIndex: 0, InterfaceType: efa, SubnetId: {subnet}, Groups: [{efa}]}}
        """,
    )
    p = make_provider(load_config(path).config, home=tmp_path / "home")
    assert isinstance(p, AWSProvider)
    p.bootstrap()
    (node,) = p.create_nodes("ray.head.default", 1, launch_tags(NodeKind.HEAD))
    launched = instance(p, node.id)
    (interface,) = launched["NetworkInterfaces"]
    assert interface["SubnetId"] == subnet
    assert [g["GroupId"] for g in interface["Groups"]] == [efa]  # the interface's, not rayctl's
    assert launched["VpcId"] == vpc and node.internal_ip.startswith("10.213.1.")


# --- on-prem keys: optional, checked when used -------------------------------------------


def test_onprem_key_given_but_missing_is_an_error_at_up_not_at_validate(
    offline: Path, tmp_path: Path
) -> None:
    config = load_config(CORPUS / "onprem" / "full.yaml").config
    assert config.auth.ssh_private_key == str(offline / ".ssh" / "rf-onprem-does-not-exist")
    provider = make_provider(config, home=tmp_path / "rayctl-home")
    with pytest.raises(ProviderError, match=r"auth.ssh_private_key: key file .* not found"):
        provider.bootstrap()


def test_without_a_key_the_runner_uses_the_default_keys(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    runner = SSHRunner("192.0.2.1", node_id="n", user="ray", key_path=None,
                       known_hosts=tmp_path / "known_hosts")  # fmt: skip
    with pytest.raises(AuthError, match="no ssh key to log in with"):
        runner._load_keys()
    (offline / ".ssh").mkdir()
    write_private_key(offline / ".ssh" / "id_ed25519")
    runner = SSHRunner("192.0.2.1", node_id="n", user="ray", key_path=None,
                       known_hosts=tmp_path / "known_hosts")  # fmt: skip
    (key,) = runner._load_keys()
    assert key.get_name() == "ssh-ed25519"
    argv = runner.ssh_base_argv()
    assert "-i" not in argv and "IdentityAgent=none" not in argv  # ssh's own defaults too
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv  # host keys still pinned
