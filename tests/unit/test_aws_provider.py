"""The AWS provider against moto, in-process: real boto3 and botocore, fake EC2/IAM/STS.

API calls are counted and failures injected with botocore event hooks on the provider's own
clients. moto hands instances public addresses (real internet ones): nothing here opens a
connection to any instance address.
"""

from __future__ import annotations

import fnmatch
import json
import stat
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from moto import mock_aws

from rayctl.cli.app import run
from rayctl.config import ClusterConfig
from rayctl.config.loader import LoadedConfig
from rayctl.errors import AuthError, CapacityError, ProviderError, QuotaError, TransientError
from rayctl.ops import down as down_module
from rayctl.ops import known
from rayctl.providers.aws import instances as aws_module
from rayctl.providers.aws import setup as aws_setup
from rayctl.providers.aws.errors import convert
from rayctl.providers.aws.instances import AWSProvider
from rayctl.providers.base import Node, NodeKind, NodeState, Tag
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime.runner import LocalRunner
from tests.conftest import write_private_key

REGION = "us-west-2"
CLUSTER = "test"
IMAGE = "ami-1e749f67"  # one of moto's images (moto does not validate ids by default)
MY_CIDR = "203.0.113.7/32"
MINE = [{"Name": f"tag:{Tag.CLUSTER}", "Values": [CLUSTER]}]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(aws_module, "LAUNCH_RETRY_DELAYS_S", (0.0, 0.0))
    with mock_aws():
        yield


def load(tmp_path: Path, text: str = "", **provider: Any) -> ClusterConfig:
    settings = {"type": "aws", "region": REGION, "ssh_source_cidrs": [MY_CIDR], **provider}
    body = textwrap.dedent(text) or textwrap.dedent(
        f"""\
        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}
            max_workers: 200
        head_node_type: head
        max_workers: 200
        """
    )
    path = tmp_path / "cluster.yaml"
    given = {k: v for k, v in settings.items() if v is not None}
    path.write_text(f"cluster_name: {CLUSTER}\nprovider: {json.dumps(given)}\n" + body)
    return load_config(path).config


@pytest.fixture
def config(tmp_path: Path) -> ClusterConfig:
    return load(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "rayctl-home"


@pytest.fixture
def provider(aws: None, config: ClusterConfig, home: Path) -> AWSProvider:
    made = make_provider(config, home=home)
    assert isinstance(made, AWSProvider)
    return made


def launch_tags(kind: NodeKind, launch_hash: str = "hash-1") -> dict[str, str]:
    return {
        Tag.KIND: kind.value,
        Tag.LAUNCH_HASH: launch_hash,
        Tag.STATUS: "uninitialized",
        Tag.LAUNCH_REQUEST: "req-1",
    }


def calls(client: Any, operation: str = "") -> list[dict[str, Any]]:
    """Record the request bodies of the client's calls (of `operation`, or all of them),
    as botocore sends them: the real client, only observed."""
    seen: list[dict[str, Any]] = []
    service = client.meta.service_model.service_name
    event = f"before-call.{service}" + (f".{operation}" if operation else "")

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["body"])

    client.meta.events.register(event, record)
    return seen


def creations(bodies: list[dict[str, Any]]) -> list[str]:
    """The actions among `bodies` that create or change something (dry runs excluded)."""
    verbs = ("Create", "Import", "Authorize", "Revoke", "Put", "Add", "Run", "Start", "Delete")
    return [
        b["Action"] for b in bodies if b["Action"].startswith(verbs) and b.get("DryRun") != "true"
    ]


def fail_when(
    client: Any, operation: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda b: True
) -> list[dict[str, Any]]:
    """Make `operation` fail with `code` for requests `when` selects; returns their bodies."""
    failed: list[dict[str, Any]] = []
    service = client.meta.service_model.service_name

    def inject(params: dict[str, Any], **_: Any) -> None:
        if when(params["body"]):
            failed.append(params["body"])
            error = {"Error": {"Code": code, "Message": f"injected {code}"}}
            raise ClientError(error, operation)

    client.meta.events.register(f"before-call.{service}.{operation}", inject)
    return failed


def not_dry(body: dict[str, Any]) -> bool:
    return body.get("DryRun") != "true"


def cluster_resources(p: AWSProvider) -> dict[str, list[str]]:
    """What is left in AWS carrying the cluster's tag (instances not yet terminated)."""
    reservations = p.ec2.describe_instances(Filters=MINE)["Reservations"]
    instances = [
        i["InstanceId"]
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    return {
        "instances": instances,
        "volumes": [v["VolumeId"] for v in p.ec2.describe_volumes(Filters=MINE)["Volumes"]],
        "groups": [
            g["GroupId"] for g in p.ec2.describe_security_groups(Filters=MINE)["SecurityGroups"]
        ],
        "key_pairs": [k["KeyName"] for k in p.ec2.describe_key_pairs(Filters=MINE)["KeyPairs"]],
        "roles": [r["RoleName"] for r in p.iam.list_roles()["Roles"]],
        "profiles": [
            x["InstanceProfileName"] for x in p.iam.list_instance_profiles()["InstanceProfiles"]
        ],
    }


NOTHING = {
    "instances": [],
    "volumes": [],
    "groups": [],
    "key_pairs": [],
    "roles": [],
    "profiles": [],
}


def group_of(p: AWSProvider) -> dict[str, Any]:
    groups = p.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"rayctl-{CLUSTER}"]}]
    )["SecurityGroups"]
    assert len(groups) == 1
    return groups[0]


def instance(p: AWSProvider, instance_id: str) -> dict[str, Any]:
    return p.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


# --- bootstrap ------------------------------------------------------------------------


def test_bootstrap_creates_key_pair_group_and_head_role_once(
    provider: AWSProvider, home: Path
) -> None:
    provider.bootstrap()

    pairs = provider.ec2.describe_key_pairs(Filters=MINE)["KeyPairs"]
    assert [k["KeyName"] for k in pairs] == [f"rayctl-{CLUSTER}-{REGION}"]
    key = home / "keys" / f"rayctl-{CLUSTER}-{REGION}.pem"
    assert provider.key_path == key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")

    group = group_of(provider)
    assert aws_setup.tag_dict(group["Tags"])[Tag.CLUSTER] == CLUSTER
    # All traffic from the group itself, SSH from the configured source, nothing else.
    assert aws_setup.rule_keys(group["IpPermissions"]) == {
        ("-1", None, None, "group", group["GroupId"]),
        ("tcp", 22, 22, "cidr", MY_CIDR),
    }

    role_name = f"rayctl-head-{CLUSTER}-{REGION}"
    role = provider.iam.get_role(RoleName=role_name)["Role"]
    assert aws_setup.tag_dict(role["Tags"])[Tag.CLUSTER] == CLUSTER
    profile = provider.iam.get_instance_profile(InstanceProfileName=role_name)
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [role_name]
    document = provider.iam.get_role_policy(
        RoleName=role_name, PolicyName=aws_setup.HEAD_POLICY_NAME
    )["PolicyDocument"]
    actions = {
        action
        for statement in document["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    assert actions == {
        "ec2:Describe*",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:StartInstances",
        "ec2:StopInstances",
        "ec2:TerminateInstances",
        # Autostop's `down`, from the head (tests/unit/test_aws_autostop.py).
        "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:DeleteSecurityGroup",
        "ec2:DeleteVolume",
        "ec2:DeleteKeyPair",
        "iam:GetRole",
        "iam:ListRoleTags",
        "iam:RemoveRoleFromInstanceProfile",
        "iam:DeleteInstanceProfile",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
    }
    sids = {s["Sid"]: s for s in document["Statement"]}
    owned = {"StringEquals": {f"ec2:ResourceTag/{Tag.CLUSTER}": CLUSTER}}
    assert sids["ManageOwn"]["Condition"] == owned
    assert sids["RemoveOwn"]["Condition"] == owned
    vpc = group["VpcId"]
    assert sids["LeaveGroup"]["Condition"] == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:{REGION}:123456789012:vpc/{vpc}"}
    }
    assert sids["RemoveOwnRole"]["Resource"] == [
        f"arn:aws:iam::123456789012:role/{role_name}",
        f"arn:aws:iam::123456789012:instance-profile/{role_name}",
    ]

    ec2_calls, iam_calls = calls(provider.ec2), calls(provider.iam)
    provider.bootstrap()
    assert creations(ec2_calls) == []
    assert creations(iam_calls) == []
    assert cluster_resources(provider)["groups"] == [group["GroupId"]]


def test_head_policy_passes_only_the_workers_roles(aws: None, tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""\
        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config:
              InstanceType: m5.large
              ImageId: {IMAGE}
              IamInstanceProfile: {{Name: worker-profile}}
        head_node_type: head
        """,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.iam.create_role(RoleName="worker-role", AssumeRolePolicyDocument="{}")
    p.iam.create_instance_profile(InstanceProfileName="worker-profile")
    p.iam.add_role_to_instance_profile(InstanceProfileName="worker-profile", RoleName="worker-role")
    p.bootstrap()
    document = p.iam.get_role_policy(RoleName=p.head_role, PolicyName=aws_setup.HEAD_POLICY_NAME)[
        "PolicyDocument"
    ]
    passing = [s for s in document["Statement"] if s["Action"] == "iam:PassRole"]
    assert passing == [
        {
            "Sid": "PassWorkerRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": ["arn:aws:iam::123456789012:role/worker-role"],
        }
    ]


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement of `document` names `action` on `resource` (wildcards as
    IAM matches them; conditions are not evaluated)."""

    def listed(value: str | list[str], name: str) -> bool:
        values = [value] if isinstance(value, str) else value
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in values)

    return any(
        s["Effect"] == "Allow" and listed(s["Action"], action) and listed(s["Resource"], resource)
        for s in document["Statement"]
    )


def test_head_launches_from_a_launch_template_and_passes_its_role(
    aws: None, tmp_path: Path
) -> None:
    """RunInstances with a LaunchTemplate also acts on the template (and reads it with
    DescribeLaunchTemplates/Versions); the role of the template's instance profile is passed."""
    config = load(
        tmp_path,
        f"""        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config:
              LaunchTemplate: {{LaunchTemplateName: worker-template}}
        head_node_type: head
        """,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.iam.create_role(RoleName="template-role", AssumeRolePolicyDocument="{}")
    p.iam.create_instance_profile(InstanceProfileName="template-profile")
    p.iam.add_role_to_instance_profile(
        InstanceProfileName="template-profile", RoleName="template-role"
    )
    template = p.ec2.create_launch_template(
        LaunchTemplateName="worker-template",
        LaunchTemplateData={
            "InstanceType": "m5.large",
            "ImageId": IMAGE,
            "IamInstanceProfile": {"Name": "template-profile"},
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    p.bootstrap()
    document = p.iam.get_role_policy(RoleName=p.head_role, PolicyName=aws_setup.HEAD_POLICY_NAME)[
        "PolicyDocument"
    ]
    arn = f"arn:aws:ec2:{REGION}:123456789012"
    assert allowed(document, "ec2:RunInstances", f"{arn}:launch-template/{template}")
    assert allowed(document, "ec2:DescribeLaunchTemplates", "*")
    assert allowed(document, "ec2:DescribeLaunchTemplateVersions", "*")
    assert allowed(document, "iam:PassRole", "arn:aws:iam::123456789012:role/template-role")
    assert not allowed(document, "ec2:CreateLaunchTemplate", f"{arn}:launch-template/x")

    (worker,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    # The template sets no metadata options: the launch requires IMDSv2. (moto does not
    # apply a template's instance profile: passing its role is the policy's part alone.)
    assert instance(p, worker.id)["MetadataOptions"]["HttpTokens"] == "required"


def test_instances_require_imdsv2_unless_the_config_chooses(aws: None, tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config:
              InstanceType: m5.large
              ImageId: {IMAGE}
              MetadataOptions: {{HttpTokens: optional, HttpPutResponseHopLimit: 2}}
          templated:
            node_config: {{LaunchTemplate: {{LaunchTemplateName: imds-template}}}}
        head_node_type: head
        """,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.ec2.create_launch_template(
        LaunchTemplateName="imds-template",
        LaunchTemplateData={
            "InstanceType": "m5.large",
            "ImageId": IMAGE,
            "MetadataOptions": {"HttpTokens": "optional"},
        },
    )
    runs = calls(p.ec2, "RunInstances")
    p.bootstrap()
    # The dry run asks for what the launch will.
    dry_imds = [b.get("MetadataOptions.HttpTokens") for b in runs if not not_dry(b)]
    assert sorted(dry_imds, key=str) == sorted(["required", "optional", None], key=str)
    (head,) = p.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    (worker,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    (templated,) = p.create_nodes("templated", 1, launch_tags(NodeKind.WORKER))
    options = {n.node_type: instance(p, n.id)["MetadataOptions"] for n in (head, worker, templated)}
    assert options["head"]["HttpTokens"] == "required"
    assert options["head"]["HttpEndpoint"] == "enabled"
    assert options["worker"]["HttpTokens"] == "optional"
    assert options["worker"]["HttpPutResponseHopLimit"] == 2
    assert options["templated"]["HttpTokens"] == "optional"  # the template's choice stands


def test_a_key_others_can_read_is_refused_before_anything_exists(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "id_ed25519"
    write_private_key(path, 0o640)
    config_file = tmp_path / "cluster.yaml"
    load(tmp_path)
    config_file.write_text(config_file.read_text() + f"auth: {{ssh_private_key: {path}}}\n")
    monkeypatch.setenv("RAYCTL_HOME", str(tmp_path / "home"))
    assert run(["up", str(config_file), "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"run `chmod 600 {path}`" in err and "Traceback" not in err
    assert cluster_resources(AWSProvider(load_config(config_file).config, home=tmp_path)) == NOTHING
    path.chmod(0o600)  # the owner alone: accepted
    p = AWSProvider(load_config(config_file).config, home=tmp_path / "home")
    p.bootstrap()
    assert p.key_name.startswith(f"rayctl-{CLUSTER}-{REGION}-")


def test_ssh_comes_from_the_vpc_when_nodes_are_reached_inside_it(aws: None, tmp_path: Path) -> None:
    config = load(tmp_path, ssh_source_cidrs=None, use_internal_ips=True)
    p = AWSProvider(config, home=tmp_path / "home")
    p.bootstrap()
    group = group_of(p)
    vpc = p.ec2.describe_vpcs(VpcIds=[group["VpcId"]])["Vpcs"][0]["CidrBlock"]
    assert aws_setup.rule_keys(group["IpPermissions"]) == {
        ("-1", None, None, "group", group["GroupId"]),
        ("tcp", 22, 22, "cidr", vpc),
    }


def test_rules_follow_the_config(aws: None, tmp_path: Path) -> None:
    """A source dropped from the config is revoked; extra rules from the config are added."""
    first = AWSProvider(load(tmp_path, ssh_source_cidrs=[MY_CIDR]), home=tmp_path / "h")
    first.bootstrap()
    extra = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "IpRanges": [{"CidrIp": "10.1.0.0/16"}],
    }
    second = AWSProvider(
        load(
            tmp_path,
            ssh_source_cidrs=["198.51.100.0/24", "2001:db8::/32"],
            security_group={"IpPermissions": [extra]},
        ),
        home=tmp_path / "h",
    )
    second.bootstrap()
    group = group_of(second)
    assert aws_setup.rule_keys(group["IpPermissions"]) == {
        ("-1", None, None, "group", group["GroupId"]),
        ("tcp", 22, 22, "cidr", "198.51.100.0/24"),
        ("tcp", 22, 22, "cidr6", "2001:db8::/32"),
        ("tcp", 443, 443, "cidr", "10.1.0.0/16"),
    }


def test_missing_credentials_stop_bootstrap_before_anything_exists(
    aws: None, config: ClusterConfig, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    p = AWSProvider(config, home=home)
    with pytest.raises(AuthError, match="no AWS credentials found"):
        p.bootstrap()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert cluster_resources(AWSProvider(config, home=home)) == NOTHING
    assert not home.exists()


def test_up_with_bad_credentials_exits_3_with_the_message_and_creates_nothing(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load(tmp_path)  # writes tmp_path/cluster.yaml
    monkeypatch.setenv("RAYCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert run(["up", str(tmp_path / "cluster.yaml"), "--yes"]) == 3
    err = capsys.readouterr().err
    assert "no AWS credentials found" in err and "Traceback" not in err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert cluster_resources(AWSProvider(load(tmp_path), home=tmp_path / "x")) == NOTHING


def test_missing_launch_permission_is_named_before_anything_exists(
    provider: AWSProvider, home: Path
) -> None:
    fail_when(provider.ec2, "RunInstances", "UnauthorizedOperation")
    with pytest.raises(AuthError, match="lack the permission ec2:RunInstances"):
        provider.bootstrap()
    assert cluster_resources(provider) == NOTHING
    assert not home.exists()


def test_missing_iam_permission_is_named_before_any_ec2_resource_exists(
    provider: AWSProvider, home: Path
) -> None:
    fail_when(provider.iam, "CreateRole", "AccessDenied")
    with pytest.raises(AuthError, match="lack the permission iam:CreateRole"):
        provider.bootstrap()
    assert cluster_resources(provider) == NOTHING
    assert not home.exists()


def test_no_image_is_a_clear_error_before_anything_exists(aws: None, tmp_path: Path) -> None:
    """moto ships no Ubuntu 24.04 image, as a region without one would be."""
    config = load(tmp_path, "max_workers: 2\n")  # the default node types: no ImageId
    p = AWSProvider(config, home=tmp_path / "home")
    with pytest.raises(
        ProviderError, match=r"no image for node type\(s\) ray.head.default \(Ubuntu\), "
    ):
        p.bootstrap()
    assert cluster_resources(p) == NOTHING


def test_resolved_image_is_pinned_for_the_head(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's Canonical images are older Ubuntus: look those up instead.
    pattern = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"
    monkeypatch.setitem(aws_setup.UBUNTU_IMAGES, "x86_64", pattern)
    config = load(tmp_path, "max_workers: 2\n")
    p = AWSProvider(config, home=tmp_path / "home")
    p.bootstrap()
    tags = aws_setup.tag_dict(group_of(p)["Tags"])
    assert tags[f"{aws_setup.IMAGE_TAG}x86_64"] == "ami-785db401"
    # Another process (the head's monitor) launches the pinned image without resolving.
    on_head = AWSProvider(config, home=tmp_path / "head-home")
    monkeypatch.setitem(aws_setup.UBUNTU_IMAGES, "x86_64", "nothing-matches-*")
    (node,) = on_head.create_nodes("ray.worker.default", 1, launch_tags(NodeKind.WORKER))
    assert instance(on_head, node.id)["ImageId"] == "ami-785db401"


def test_lost_private_key_of_a_used_key_pair_is_explained(
    provider: AWSProvider, config: ClusterConfig, tmp_path: Path
) -> None:
    provider.bootstrap()
    provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    elsewhere = AWSProvider(config, home=tmp_path / "fresh-machine")
    with pytest.raises(ProviderError, match="created on another machine"):
        elsewhere.bootstrap()


def test_lost_private_key_of_an_unused_key_pair_is_replaced(
    provider: AWSProvider, config: ClusterConfig, tmp_path: Path
) -> None:
    provider.bootstrap()
    elsewhere = AWSProvider(config, home=tmp_path / "fresh-machine")
    elsewhere.bootstrap()
    assert elsewhere.key_path.is_file()
    assert cluster_resources(elsewhere)["key_pairs"] == [f"rayctl-{CLUSTER}-{REGION}"]


def test_given_private_key_is_imported(aws: None, tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    write_private_key(path, 0o600)
    config = load(tmp_path, "")
    config = config.model_copy(
        update={"auth": config.auth.model_copy(update={"ssh_private_key": str(path)})}
    )
    p = AWSProvider(config, home=tmp_path / "home")
    assert "key_name" not in vars(p)  # the key's path is known without a key pair's name
    p.bootstrap()
    (pair,) = p.ec2.describe_key_pairs(Filters=MINE)["KeyPairs"]
    assert pair["KeyName"] == p.key_name
    assert pair["KeyName"].startswith(f"rayctl-{CLUSTER}-{REGION}-")
    assert p.key_path == path
    assert not (tmp_path / "home" / "keys").exists()


# --- launching and listing ------------------------------------------------------------


def test_create_nodes_is_one_call_tagging_instances_and_volumes(provider: AWSProvider) -> None:
    provider.bootstrap()
    runs = calls(provider.ec2, "RunInstances")
    nodes = provider.create_nodes("worker", 3, launch_tags(NodeKind.WORKER))
    assert len([b for b in runs if not_dry(b)]) == 1
    assert runs[-1]["MinCount"] == runs[-1]["MaxCount"] == 3
    assert len(nodes) == 3
    group_id = group_of(provider)["GroupId"]
    for node in nodes:
        assert node.kind is NodeKind.WORKER and node.node_type == "worker"
        assert node.state in (NodeState.PENDING, NodeState.RUNNING)
        assert node.internal_ip.startswith("172.31.")
        described = instance(provider, node.id)
        assert described["KeyName"] == f"rayctl-{CLUSTER}-{REGION}"
        assert [g["GroupId"] for g in described["SecurityGroups"]] == [group_id]
        assert "IamInstanceProfile" not in described  # only the head gets the role
        tags = aws_setup.tag_dict(described["Tags"])
        assert tags == {
            **launch_tags(NodeKind.WORKER),
            Tag.CLUSTER: CLUSTER,
            Tag.NODE_TYPE: "worker",
            "Name": f"rayctl-{CLUSTER}-worker",
        }
    volumes = provider.ec2.describe_volumes(Filters=MINE)["Volumes"]
    assert sorted(v["Attachments"][0]["InstanceId"] for v in volumes) == sorted(n.id for n in nodes)
    assert all(aws_setup.tag_dict(v["Tags"])[Tag.NODE_TYPE] == "worker" for v in volumes)

    (head,) = provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    profile = instance(provider, head.id)["IamInstanceProfile"]["Arn"]
    assert profile.endswith(f"instance-profile/rayctl-head-{CLUSTER}-{REGION}")
    listed = provider.list_nodes()
    assert sorted(n.id for n in listed) == sorted([head.id, *(n.id for n in nodes)])
    assert [n.id for n in provider.list_nodes(**{Tag.KIND: "head"})] == [head.id]


def test_node_config_tags_and_groups_are_kept(aws: None, tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""\
        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config:
              InstanceType: m5.large
              ImageId: {IMAGE}
              TagSpecifications:
                - ResourceType: instance
                  Tags: [{{Key: team, Value: ml}}, {{Key: {Tag.CLUSTER}, Value: spoofed}}]
        head_node_type: head
        """,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    tags = aws_setup.tag_dict(instance(p, node.id)["Tags"])
    assert tags["team"] == "ml" and tags[Tag.CLUSTER] == CLUSTER


def test_list_nodes_reads_every_page(provider: AWSProvider) -> None:
    provider.bootstrap()
    created = [
        n.id
        for _ in range(3)
        for n in provider.create_nodes("worker", 40, launch_tags(NodeKind.WORKER))
    ]
    assert len(created) == 120
    # moto pages at 100 reservations, each run_instances call is one: ask for small pages.
    provider.ec2.meta.events.register(
        "provide-client-params.ec2.DescribeInstances",
        lambda params, **_: params.update(MaxResults=1),
    )
    pages = calls(provider.ec2, "DescribeInstances")
    assert sorted(n.id for n in provider.list_nodes()) == sorted(created)
    assert len(pages) == 3


def test_launch_moves_to_the_next_zone_when_one_has_no_capacity(provider: AWSProvider) -> None:
    provider.bootstrap()
    subnets = provider._launch_context().subnets["worker"]
    first, second = subnets[0], subnets[1]
    runs = calls(provider.ec2, "RunInstances")  # first: it sees the failing call too
    failed = fail_when(
        provider.ec2,
        "RunInstances",
        "InsufficientInstanceCapacity",
        lambda b: not_dry(b) and b["SubnetId"] == first.id,
    )
    nodes = provider.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert len(failed) == 1
    assert [b["SubnetId"] for b in runs] == [first.id, second.id]
    assert {instance(provider, n.id)["Placement"]["AvailabilityZone"] for n in nodes} == {
        second.zone
    }


def test_no_capacity_anywhere_names_every_subnet_tried(provider: AWSProvider) -> None:
    provider.bootstrap()
    subnets = provider._launch_context().subnets["worker"]
    fail_when(provider.ec2, "RunInstances", "Unsupported", not_dry)
    with pytest.raises(CapacityError) as raised:
        provider.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert raised.value.retryable
    for subnet in subnets:
        assert f"{subnet.id} ({subnet.zone})" in str(raised.value)
    assert provider.list_nodes() == []


@pytest.mark.parametrize(
    ("code", "tried"),
    [
        ("InsufficientInstanceCapacity", ["a1", "b1"]),  # the zone is full: skip its subnets
        ("InsufficientFreeAddressesInSubnet", ["a1", "a2"]),  # only that subnet is full
    ],
)
def test_given_subnets_are_tried_in_order(
    aws: None, tmp_path: Path, code: str, tried: list[str]
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.210.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        name: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for name, cidr, zone in [
            ("a1", "10.210.1.0/24", f"{REGION}a"),
            ("a2", "10.210.2.0/24", f"{REGION}a"),
            ("b1", "10.210.3.0/24", f"{REGION}b"),
        ]
    }
    config = load(
        tmp_path,
        f"""\
        available_node_types:
          head:
            node_config:
              InstanceType: m5.large
              ImageId: {IMAGE}
              SubnetIds: [{subnets["a1"]}, {subnets["a2"]}, {subnets["b1"]}]
        head_node_type: head
        """,
        use_internal_ips=True,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.bootstrap()
    assert group_of(p)["VpcId"] == vpc
    runs = calls(p.ec2, "RunInstances")
    fail_when(p.ec2, "RunInstances", code, lambda b: not_dry(b) and b["SubnetId"] == subnets["a1"])
    (node,) = p.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    assert [b["SubnetId"] for b in runs] == [subnets[n] for n in tried]
    assert instance(p, node.id)["SubnetId"] == subnets[tried[-1]]
    assert node.internal_ip.startswith("10.210.")  # an address of a subnet made here


def test_spot_workers_are_terminated_not_cached(aws: None, tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""\
        available_node_types:
          head: {{node_config: {{InstanceType: m5.large, ImageId: {IMAGE}}}}}
          worker:
            node_config:
              InstanceType: m5.large
              ImageId: {IMAGE}
              InstanceMarketOptions: {{MarketType: spot}}
        head_node_type: head
        """,
    )
    p = AWSProvider(config, home=tmp_path / "home")
    p.bootstrap()
    (node,) = p.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert instance(p, node.id).get("InstanceLifecycle") == "spot"
    p.terminate_nodes([node.id])
    assert instance(p, node.id)["State"]["Name"] in ("shutting-down", "terminated")


def test_quota_does_not_fail_over(provider: AWSProvider) -> None:
    provider.bootstrap()
    failed = fail_when(provider.ec2, "RunInstances", "VcpuLimitExceeded", not_dry)
    with pytest.raises(QuotaError, match="ask for a higher quota"):
        provider.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    assert len(failed) == 1


def test_a_passing_failure_is_retried_in_the_same_subnet(provider: AWSProvider) -> None:
    provider.bootstrap()
    failed = fail_when(
        provider.ec2, "RunInstances", "RequestLimitExceeded", lambda b: not_dry(b) and not failed
    )
    (node,) = provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert len(failed) == 1
    assert node.id


def test_retries_of_one_launch_carry_one_client_token_another_subnet_a_new_one(
    provider: AWSProvider,
) -> None:
    """A retried RunInstances that EC2 had accepted (a timeout) must not launch twice: EC2
    returns the first launch for a token it has seen. moto does not implement that
    idempotency, so this checks the tokens sent."""
    provider.bootstrap()
    first = provider._launch_context().subnets["worker"][0]
    runs = calls(provider.ec2, "RunInstances")  # first: it sees the failing calls too
    throttled = fail_when(
        provider.ec2,
        "RunInstances",
        "RequestLimitExceeded",
        lambda b: not_dry(b) and len(throttled) < 2,
    )
    (node,) = provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert len(throttled) == 2 and len(runs) == 3
    assert {b["SubnetId"] for b in runs} == {first.id}
    assert len({b["ClientToken"] for b in runs}) == 1
    assert [n.id for n in provider.list_nodes()] == [node.id]

    runs.clear()
    fail_when(
        provider.ec2,
        "RunInstances",
        "InsufficientInstanceCapacity",
        lambda b: not_dry(b) and b["SubnetId"] == first.id,
    )
    provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert len(runs) == 2 and runs[0]["SubnetId"] == first.id != runs[1]["SubnetId"]
    assert runs[0]["ClientToken"] != runs[1]["ClientToken"]


def test_down_force_lists_instances_that_cannot_be_terminated(
    provider: AWSProvider, config: ClusterConfig, home: Path
) -> None:
    provider.bootstrap()
    (head,) = provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    fail_when(provider.ec2, "TerminateInstances", "UnauthorizedOperation")
    provider.forget_nodes([head.id])  # nothing to forget: EC2's tags are the record
    assert [n.id for n in provider.list_nodes()] == [head.id]

    loaded = LoadedConfig(config=config, path=home / "cluster.yaml")
    # No monitor or jobs to stop, and nothing may connect to moto's (public) instance addresses.
    with (
        mock.patch.object(down_module, "make_provider", return_value=provider),
        mock.patch.object(down_module, "stop_monitor"),
        mock.patch.object(down_module._Down, "_stop_jobs"),
    ):
        with pytest.raises(AuthError, match="--force"):
            down_module.down(loaded, home=home)
        report = down_module.down(loaded, home=home, force=True)
    assert [(r.id, r.address) for r in report.may_remain] == [(head.id, head.external_ip)]
    assert "ec2:TerminateInstances" in report.may_remain[0].why
    assert report.cleanup_error and head.id in report.cleanup_error  # still running
    assert report.removed == []


def test_monitor_on_the_head_launches_without_bootstrapping(
    provider: AWSProvider, config: ClusterConfig, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match="run `rayctl up` first"):
        provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    provider.bootstrap()
    on_head = AWSProvider(config, home=tmp_path / "head-home")
    bodies = calls(on_head.ec2)
    (node,) = on_head.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    assert creations(bodies) == ["RunInstances"]
    assert (
        instance(on_head, node.id)["SecurityGroups"][0]["GroupId"] == group_of(on_head)["GroupId"]
    )


# --- terminating, caching, cleaning up ------------------------------------------------


def test_terminate_confirms_and_the_nodes_are_no_longer_listed(aws: None, tmp_path: Path) -> None:
    p = AWSProvider(load(tmp_path, cache_stopped_nodes=False), home=tmp_path / "home")
    p.bootstrap()
    nodes = p.create_nodes("worker", 3, launch_tags(NodeKind.WORKER))
    terminations = calls(p.ec2, "TerminateInstances")
    p.terminate_nodes([n.id for n in nodes[:2]])
    assert len(terminations) == 1  # one call for the batch
    for node in nodes[:2]:
        assert instance(p, node.id)["State"]["Name"] in ("shutting-down", "terminated")
    assert [n.id for n in p.list_nodes()] == [nodes[2].id]
    p.terminate_nodes([nodes[0].id, "i-0000000000000000"])  # idempotent, unknown ids ignored
    assert len(terminations) == 1


def test_cached_workers_are_stopped_and_reused(provider: AWSProvider) -> None:
    provider.bootstrap()
    nodes = provider.create_nodes("worker", 3, launch_tags(NodeKind.WORKER))
    stopped = [n.id for n in nodes[:2]]
    provider.terminate_nodes(stopped)
    for node_id in stopped:
        assert instance(provider, node_id)["State"]["Name"] == "stopped"
    assert [n.id for n in provider.list_nodes()] == [nodes[2].id]  # the cache is not nodes

    # Another node_config (launch hash) does not reuse them.
    (other,) = provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER, "hash-2"))
    assert other.id not in stopped

    runs = calls(provider.ec2, "RunInstances")
    starts = calls(provider.ec2, "StartInstances")
    tags = {**launch_tags(NodeKind.WORKER), Tag.LAUNCH_REQUEST: "req-2"}
    again = provider.create_nodes("worker", 3, tags)
    assert len(starts) == 1
    assert sorted(n.id for n in again[:2]) == sorted(stopped)
    assert len(runs) == 1 and runs[0]["MaxCount"] == 1
    for node in again:
        described = instance(provider, node.id)
        assert described["State"]["Name"] in ("pending", "running")
        assert aws_setup.tag_dict(described["Tags"])[Tag.LAUNCH_REQUEST] == "req-2"


def test_when_the_head_goes_everything_is_terminated(provider: AWSProvider) -> None:
    provider.bootstrap()
    (head,) = provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    workers = provider.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    ids = [head.id, *(w.id for w in workers)]
    stops = calls(provider.ec2, "StopInstances")
    provider.terminate_nodes(ids)
    assert stops == []
    assert {instance(provider, i)["State"]["Name"] for i in ids} <= {"shutting-down", "terminated"}


def test_down_from_a_fresh_machine_leaves_nothing_of_the_cluster(
    provider: AWSProvider, config: ClusterConfig, tmp_path: Path
) -> None:
    provider.bootstrap()
    (head,) = provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    workers = provider.create_nodes("worker", 3, launch_tags(NodeKind.WORKER))
    provider.terminate_nodes([workers[0].id])  # cached: stopped, not a node
    assert instance(provider, workers[0].id)["State"]["Name"] == "stopped"
    # A volume that outlives its instance (DeleteOnTermination false), tagged as rayctl does.
    leftover = provider.ec2.create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=8,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": Tag.CLUSTER, "Value": CLUSTER}]}
        ],
    )["VolumeId"]
    assert cluster_resources(provider)["volumes"]

    fresh = AWSProvider(config, home=tmp_path / "fresh-machine")
    nodes = fresh.list_nodes()
    assert sorted(n.id for n in nodes) == sorted([head.id, workers[1].id, workers[2].id])
    fresh.terminate_nodes([n.id for n in nodes])
    assert fresh.list_nodes() == []
    fresh.cleanup()
    assert cluster_resources(fresh) == NOTHING
    assert leftover not in cluster_resources(fresh)["volumes"]
    for i in [head.id, *(w.id for w in workers)]:
        assert instance(fresh, i)["State"]["Name"] == "terminated"
    fresh.cleanup()  # idempotent
    provider.cleanup()  # the machine that made it forgets its key too
    assert not provider.key_path.exists()


def test_a_hundred_workers_launched_and_terminated_leave_nothing(aws: None, tmp_path: Path) -> None:
    p = AWSProvider(load(tmp_path, cache_stopped_nodes=False), home=tmp_path / "home")
    p.bootstrap()
    runs, terminations = calls(p.ec2, "RunInstances"), calls(p.ec2, "TerminateInstances")
    workers = p.create_nodes("worker", 100, launch_tags(NodeKind.WORKER))
    assert len({w.id for w in workers}) == 100 and len(runs) == 1
    assert len(p.list_nodes()) == 100
    p.terminate_nodes([w.id for w in workers])
    assert len(terminations) == 1 and p.list_nodes() == []
    p.cleanup()
    assert cluster_resources(p) == NOTHING


def test_cleanup_refuses_while_nodes_run(provider: AWSProvider) -> None:
    provider.bootstrap()
    provider.create_nodes("worker", 1, launch_tags(NodeKind.WORKER))
    with pytest.raises(ProviderError, match="still has running instances"):
        provider.cleanup()
    assert cluster_resources(provider)["groups"]


# --- nodes: runner, ray start, the head ----------------------------------------------


def test_runner_address_follows_use_internal_ips(aws: None, tmp_path: Path) -> None:
    node = Node("i-1", "worker", NodeKind.WORKER, NodeState.RUNNING, "10.0.0.5", "192.0.2.9")
    public = AWSProvider(load(tmp_path), home=tmp_path / "h")
    assert public.runner(node).address == "192.0.2.9"  # constructed, never connected
    internal = AWSProvider(load(tmp_path, use_internal_ips=True), home=tmp_path / "h")
    runner = internal.runner(node)
    assert runner.address == "10.0.0.5" and runner.node_id == "i-1" and runner.user == "ubuntu"
    # Ports Ray would pick at random are pinned, so the security-group check knows them all.
    assert internal.ray_start_args(node).args == [
        "--node-ip-address=10.0.0.5",
        "--node-manager-port=6380",
        "--object-manager-port=6381",
        "--metrics-export-port=6382",
        "--dashboard-agent-grpc-port=6383",
        "--runtime-env-agent-port=6384",
    ]


def test_prepare_head_copies_the_key_but_no_credentials(
    provider: AWSProvider,
    config: ClusterConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.bootstrap()
    provider.known_hosts.write_text("i-1 ssh-ed25519 AAAA\n")
    head_home = tmp_path / "head"
    known = head_home / ".rayctl" / "clusters" / CLUSTER / "known_hosts"
    known.parent.mkdir(parents=True)
    # The head's monitor pinned a worker (i-9) this machine never saw, and holds an older
    # pin of the head (i-1): ours wins for the hosts we know, theirs stay for the others.
    known.write_text("i-1 ssh-ed25519 OLD\ni-9 ssh-ed25519 BBBB\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    head = Node("i-1", "head", NodeKind.HEAD, NodeState.RUNNING, "10.0.0.5", None)
    head_config, env = provider.prepare_head(config, head, LocalRunner(head_home))
    key = head_home / ".rayctl" / "keys" / provider.key_path.name
    assert key.read_bytes() == provider.key_path.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert known.read_text() == "i-1 ssh-ed25519 AAAA\ni-9 ssh-ed25519 BBBB\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    assert head_config.auth == config.auth  # the same key path on the head: same launch hash
    assert env == {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}


# --- errors ------------------------------------------------------------------------------


def client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("InsufficientInstanceCapacity", CapacityError),
        ("InsufficientCapacity", CapacityError),
        ("Unsupported", CapacityError),
        ("SpotMaxPriceTooLow", CapacityError),
        ("UnfulfillableCapacity", CapacityError),
        ("InsufficientFreeAddressesInSubnet", CapacityError),
        ("InstanceLimitExceeded", QuotaError),
        ("VcpuLimitExceeded", QuotaError),
        ("MaxSpotInstanceCountExceeded", QuotaError),
        ("AuthFailure", AuthError),
        ("UnauthorizedOperation", AuthError),
        ("InvalidClientTokenId", AuthError),
        ("ExpiredToken", AuthError),
        ("AccessDenied", AuthError),
        ("RequestLimitExceeded", TransientError),
        ("Throttling", TransientError),
        ("InternalError", TransientError),
        ("InvalidAMIID.NotFound", ProviderError),
    ],
)
def test_error_table(code: str, kind: type[ProviderError]) -> None:
    error = convert(client_error(code), "ec2:RunInstances")
    assert type(error) is kind
    assert code in str(error) and "ec2:RunInstances" in str(error)


def test_errors_outside_the_table() -> None:
    assert isinstance(convert(NoCredentialsError(), "sts:GetCallerIdentity"), AuthError)
    unreachable = convert(EndpointConnectionError(endpoint_url="https://x"), "ec2:RunInstances")
    assert isinstance(unreachable, TransientError) and unreachable.retryable
    profile = client_error(
        "InvalidParameterValue", "Value (p) for parameter iamInstanceProfile.name is invalid."
    )
    assert isinstance(convert(profile, "ec2:RunInstances"), TransientError)
    assert type(convert(client_error("InvalidParameterValue"), "ec2:RunInstances")) is ProviderError
    denied = convert(
        client_error("UnauthorizedOperation", "Encoded authorization failure message: x"),
        "ec2:RunInstances",
    )
    assert "lack the permission ec2:RunInstances" in str(denied)
    assert "decode-authorization-message" in str(denied)


def test_clusters_lists_an_aws_cluster_from_its_ec2_tags(
    provider: AWSProvider,
    config: ClusterConfig,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The record says where (the region, in the config); the nodes come from EC2."""
    monkeypatch.setenv("RAYCTL_HOME", str(home))
    known.record(home, LoadedConfig(config, tmp_path / "cluster.yaml"))
    provider.bootstrap()
    (head,) = provider.create_nodes("head", 1, launch_tags(NodeKind.HEAD))
    provider.create_nodes("worker", 2, launch_tags(NodeKind.WORKER))
    capsys.readouterr()
    assert run(["clusters", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["clusters"]
    listed = (row["name"], row["provider"], row["nodes"], row["head_ip"], row["error"])
    assert listed == (CLUSTER, "aws", 3, head.internal_ip, None)
