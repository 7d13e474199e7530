"""What an AWS cluster needs before nodes launch, found or created by name and tag: subnets,
the image, the cluster's security group, its key pair and the head's IAM role. Lookups and
creations are separate functions so that `bootstrap` can check everything before it creates
anything, and the head's monitor can look everything up without creating."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayctl.errors import ProviderError
from rayctl.providers.aws.errors import call
from rayctl.providers.base import Tag

# Canonical's account and its Ubuntu 24.04 LTS images (python3.12: rayctl's runtime needs
# 3.11+). Real users get the newest such image of the region; moto ships none of them.
CANONICAL = "099720109477"
UBUNTU_IMAGES = {
    "x86_64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    "arm64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*",
}
# AWS's Deep Learning AMIs, for Ray's `ImageId: latest_dlami` (Ray 2.60 maps it to a fixed
# per-region table of an Ubuntu 18.04 DLAMI; rayctl looks up the newest Ubuntu 24.04 one, whose
# python3.12 runs rayctl's runtime).
DLAMI_OWNER = "898082745236"
DLAMI_IMAGES = {
    "x86_64": "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *",
    "arm64": "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *",
}
# + architecture (Ubuntu) or dlami-<architecture>: an image resolved for the cluster, on its group
IMAGE_TAG = "rayctl-image-"
REGION_TAG = "rayctl-region"
# Instance metadata through sessions only (IMDSv2): a request forged by a process on a node
# (SSRF) cannot read the instance profile's credentials with a plain GET.
IMDS_V2 = {"HttpTokens": "required", "HttpEndpoint": "enabled"}
HEAD_POLICY_NAME = "rayctl-autoscaler"
_EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class Subnet:
    id: str
    zone: str
    vpc: str


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1] if self.arn.startswith("arn:") else "aws"


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def identity(sts: Any) -> Identity:
    reply = call(sts, "get_caller_identity")
    return Identity(account=reply["Account"], arn=reply["Arn"])


# --- network ----------------------------------------------------------------------------


def named_subnets(ec2: Any, ids: Sequence[str]) -> list[Subnet]:
    """The given subnets, in the given order."""
    reply = call(ec2, "describe_subnets", SubnetIds=list(ids))
    found = {s["SubnetId"]: s for s in reply["Subnets"]}
    return [Subnet(i, found[i]["AvailabilityZone"], found[i]["VpcId"]) for i in ids]


def default_subnets(ec2: Any, region: str, zones: Sequence[str], *, public: bool) -> list[Subnet]:
    """The default VPC's subnets in `zones` (in that order; default: every zone, by name);
    with `public`, only those that give instances a public address."""
    vpcs = call(ec2, "describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])
    if not vpcs["Vpcs"]:
        raise ProviderError(
            f"region {region} has no default VPC: give the subnets to launch in as "
            "node_config.SubnetIds"
        )
    vpc = vpcs["Vpcs"][0]["VpcId"]
    filters = [
        {"Name": "vpc-id", "Values": [vpc]},
        {"Name": "state", "Values": ["available"]},
    ]
    if zones:
        filters.append({"Name": "availability-zone", "Values": list(zones)})
    subnets = call(ec2, "describe_subnets", Filters=filters)["Subnets"]
    if public:
        subnets = [s for s in subnets if s.get("MapPublicIpOnLaunch")]
    order = {z: i for i, z in enumerate(zones)}
    subnets.sort(
        key=lambda s: (
            order.get(s["AvailabilityZone"], 0),
            s["AvailabilityZone"],
            not s.get("DefaultForAz"),
            s["SubnetId"],
        )
    )
    if not subnets:
        where = f"zones {', '.join(zones)}" if zones else region
        which = "that give instances public addresses " if public else ""
        raise ProviderError(
            f"the default VPC {vpc} has no subnets {which}in {where}: give node_config."
            "SubnetIds" + ("" if not public else ", or set provider.use_internal_ips: true")
        )
    return [Subnet(s["SubnetId"], s["AvailabilityZone"], vpc) for s in subnets]


def vpc_cidrs(ec2: Any, vpc: str) -> list[str]:
    reply = call(ec2, "describe_vpcs", VpcIds=[vpc])["Vpcs"][0]
    blocks = [a["CidrBlock"] for a in reply.get("CidrBlockAssociationSet", [])]
    return blocks or [reply["CidrBlock"]]


# --- image --------------------------------------------------------------------------------


def architecture(ec2: Any, instance_type: str) -> str:
    reply = call(ec2, "describe_instance_types", InstanceTypes=[instance_type])["InstanceTypes"]
    if not reply:
        raise ProviderError(f"instance type {instance_type} is not offered in this region")
    arches = reply[0]["ProcessorInfo"]["SupportedArchitectures"]
    return "arm64" if "arm64" in arches and "x86_64" not in arches else "x86_64"


def ubuntu_image(ec2: Any, arch: str) -> str | None:
    """The newest Ubuntu LTS image for `arch` published by Canonical, or None."""
    return newest_image(ec2, CANONICAL, UBUNTU_IMAGES[arch], arch)


def dlami_image(ec2: Any, arch: str) -> str | None:
    """The newest Deep Learning AMI for `arch` published by AWS, or None."""
    return newest_image(ec2, DLAMI_OWNER, DLAMI_IMAGES[arch], arch)


def newest_image(ec2: Any, owner: str, name: str, arch: str) -> str | None:
    images = call(
        ec2,
        "describe_images",
        Owners=[owner],
        Filters=[
            {"Name": "name", "Values": [name]},
            {"Name": "state", "Values": ["available"]},
            {"Name": "architecture", "Values": [arch]},
        ],
    )["Images"]
    if not images:
        return None
    return max(images, key=lambda i: (i.get("CreationDate", ""), i["Name"]))["ImageId"]


# --- launch templates ----------------------------------------------------------------------


def launch_template_data(ec2: Any, template: Mapping[str, Any]) -> dict[str, Any]:
    """What the launch template version named by a node_config's LaunchTemplate holds
    (its default version unless it names one, as run_instances reads it)."""
    which = {k: template[k] for k in ("LaunchTemplateId", "LaunchTemplateName") if k in template}
    version = str(template.get("Version", "$Default"))
    reply = call(ec2, "describe_launch_template_versions", **which, Versions=[version])
    return reply["LaunchTemplateVersions"][0]["LaunchTemplateData"]


# --- security group -----------------------------------------------------------------------

# An inbound rule reduced to one source: (protocol, from port, to port, kind, source).
RuleKey = tuple[str, int | None, int | None, str, str]
_SOURCES = (
    ("IpRanges", "CidrIp", "cidr"),
    ("Ipv6Ranges", "CidrIpv6", "cidr6"),
    ("UserIdGroupPairs", "GroupId", "group"),
    ("PrefixListIds", "PrefixListId", "prefix"),
)
_PROTOCOLS = {"all": "-1", "6": "tcp", "17": "udp", "1": "icmp"}


def find_group(ec2: Any, vpc: str, name: str) -> dict[str, Any] | None:
    groups = call(
        ec2,
        "describe_security_groups",
        Filters=[
            {"Name": "group-name", "Values": [name]},
            {"Name": "vpc-id", "Values": [vpc]},
        ],
    )["SecurityGroups"]
    return groups[0] if groups else None


def cluster_rules(
    group_id: str, ssh_cidrs: Sequence[str], extra: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Everything from the group itself (Ray's ports stay inside the cluster), SSH from
    `ssh_cidrs`, and the config's own extra rules: nothing else comes in."""
    v4 = [{"CidrIp": c} for c in ssh_cidrs if ":" not in c]
    v6 = [{"CidrIpv6": c} for c in ssh_cidrs if ":" in c]
    ssh: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
    if v4:
        ssh["IpRanges"] = v4
    if v6:
        ssh["Ipv6Ranges"] = v6
    rules = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}, *extra]
    return [*rules, ssh] if v4 or v6 else rules


def rule_keys(permissions: Iterable[Mapping[str, Any]]) -> set[RuleKey]:
    keys = set()
    for p in permissions:
        protocol = str(p.get("IpProtocol", "-1")).lower()
        protocol = _PROTOCOLS.get(protocol, protocol)
        low = None if protocol == "-1" else p.get("FromPort")
        high = None if protocol == "-1" else p.get("ToPort")
        for field, key, kind in _SOURCES:
            keys.update((protocol, low, high, kind, s[key]) for s in p.get(field, []))
    return keys


def _permission(key: RuleKey) -> dict[str, Any]:
    protocol, low, high, kind, source = key
    field, name = next((f, k) for f, k, n in _SOURCES if n == kind)
    permission: dict[str, Any] = {"IpProtocol": protocol, field: [{name: source}]}
    if low is not None:
        permission |= {"FromPort": low, "ToPort": high}
    return permission


def sync_rules(ec2: Any, group: Mapping[str, Any], wanted: list[dict[str, Any]]) -> None:
    """Make the group's inbound rules exactly `wanted`: add what is missing, revoke the rest
    (a source dropped from the config no longer gets in)."""
    have, want = rule_keys(group.get("IpPermissions", [])), rule_keys(wanted)
    missing, extra = sorted(want - have, key=str), sorted(have - want, key=str)
    gid = group["GroupId"]
    if missing:
        call(
            ec2,
            "authorize_security_group_ingress",
            GroupId=gid,
            IpPermissions=[_permission(k) for k in missing],
            allow=("InvalidPermission.Duplicate",),
        )
    if extra:
        call(
            ec2,
            "revoke_security_group_ingress",
            GroupId=gid,
            IpPermissions=[_permission(k) for k in extra],
        )


def delete_group(ec2: Any, group_id: str, *, timeout_s: float) -> None:
    """Delete a group, retrying while the network interfaces of terminated instances still
    hold it (DependencyViolation) for up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 1.0
    while True:
        done = call(
            ec2,
            "delete_security_group",
            GroupId=group_id,
            allow=("DependencyViolation",),
        )
        if done is not None:
            return
        if time.monotonic() > deadline:
            raise ProviderError(
                f"security group {group_id} is still in use after {timeout_s:.0f} s "
                "(an instance or network interface outside rayctl may use it); "
                "run `rayctl down` again later"
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


# --- IAM ----------------------------------------------------------------------------------


def head_role_name(cluster: str, region: str) -> str:
    """Per cluster and region (IAM is global; `down` deletes it). IAM names stop at 64."""
    name = f"rayctl-head-{cluster}-{region}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(f"{cluster}/{region}".encode()).hexdigest()[:10]
    return f"rayctl-head-{cluster[:40]}-{digest}"


def head_policy(
    cluster: str, region: str, identity: Identity, pass_roles: Sequence[str], vpc: str
) -> dict[str, Any]:
    """Only what the autoscaler on the head calls: look (Describe* includes
    DescribeLaunchTemplates and DescribeLaunchTemplateVersions), launch instances that carry
    the cluster's tag (from a launch template too: RunInstances then also acts on the
    launch-template resource), and tag, stop, start and terminate instances that carry it.
    And what autostop's `down` calls to remove the cluster from the head: change the
    security groups of network interfaces in the cluster's VPC (the head leaves the
    cluster's group), delete the security groups, volumes and key pairs that carry the
    cluster's tag, and delete this role and its instance profile."""
    arn = f"arn:{identity.partition}:ec2:{region}:{identity.account}"
    iam = f"arn:{identity.partition}:iam::{identity.account}"
    role = head_role_name(cluster, region)
    any_account = f"arn:{identity.partition}:ec2:{region}:*"  # images have no account
    owned = {"StringEquals": {f"ec2:ResourceTag/{Tag.CLUSTER}": cluster}}
    statements: list[dict[str, Any]] = [
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {
            "Sid": "LaunchTagged",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [f"{arn}:instance/*", f"{arn}:volume/*"],
            "Condition": {"StringEquals": {f"aws:RequestTag/{Tag.CLUSTER}": cluster}},
        },
        {
            "Sid": "LaunchWith",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [
                f"{any_account}:image/*",
                f"{arn}:subnet/*",
                f"{arn}:network-interface/*",
                f"{arn}:security-group/*",
                f"{arn}:key-pair/*",
                f"{arn}:spot-instances-request/*",
                f"{arn}:launch-template/*",
            ],
        },
        {
            "Sid": "TagAtLaunch",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": [f"{arn}:instance/*", f"{arn}:volume/*"],
            "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        },
        {
            "Sid": "ManageOwn",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateTags",
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:TerminateInstances",
            ],
            "Resource": f"{arn}:instance/*",
            "Condition": owned,
        },
        {
            "Sid": "LeaveGroup",
            "Effect": "Allow",
            "Action": "ec2:ModifyNetworkInterfaceAttribute",
            "Resource": [f"{arn}:network-interface/*", f"{arn}:security-group/*"],
            "Condition": {"ArnEquals": {"ec2:Vpc": f"{arn}:vpc/{vpc}"}},
        },
        {
            "Sid": "RemoveOwn",
            "Effect": "Allow",
            "Action": ["ec2:DeleteSecurityGroup", "ec2:DeleteVolume", "ec2:DeleteKeyPair"],
            "Resource": [f"{arn}:security-group/*", f"{arn}:volume/*", f"{arn}:key-pair/*"],
            "Condition": owned,
        },
        {
            "Sid": "RemoveOwnRole",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:ListRoleTags",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:DeleteRolePolicy",
                "iam:DeleteRole",
            ],
            "Resource": [f"{iam}:role/{role}", f"{iam}:instance-profile/{role}"],
        },
    ]
    if pass_roles:  # the roles of the instance profiles workers launch with
        statements.append(
            {
                "Sid": "PassWorkerRoles",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": sorted(pass_roles),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def profile_roles(iam: Any, profile: Mapping[str, str]) -> list[str]:
    """The role ARNs behind a node_config IamInstanceProfile ({Name} or {Arn})."""
    name = profile.get("Name") or profile.get("Arn", "").rsplit("/", 1)[-1]
    reply = call(iam, "get_instance_profile", InstanceProfileName=name)
    return [r["Arn"] for r in reply["InstanceProfile"]["Roles"]]


def ensure_head_role(
    iam: Any, name: str, policy: Mapping[str, Any], tags: Mapping[str, str]
) -> None:
    """Get or create the head's role (with `policy` inline) and its instance profile."""
    role = call(iam, "get_role", RoleName=name, allow=("NoSuchEntity",))
    if role is None:
        call(
            iam,
            "create_role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(_EC2_TRUST),
            Description="rayctl: the head node's autoscaler launches and removes workers",
            Tags=tag_list(tags),
        )
    current = call(
        iam, "get_role_policy", RoleName=name, PolicyName=HEAD_POLICY_NAME, allow=("NoSuchEntity",)
    )
    if current is None or _policy(current["PolicyDocument"]) != policy:
        call(
            iam,
            "put_role_policy",
            RoleName=name,
            PolicyName=HEAD_POLICY_NAME,
            PolicyDocument=json.dumps(policy),
        )
    profile = call(iam, "get_instance_profile", InstanceProfileName=name, allow=("NoSuchEntity",))
    if profile is None:
        call(iam, "create_instance_profile", InstanceProfileName=name, Tags=tag_list(tags))
        roles: list[str] = []
    else:
        roles = [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]]
    if name not in roles:
        call(iam, "add_role_to_instance_profile", InstanceProfileName=name, RoleName=name)


def _policy(document: Any) -> Any:
    """IAM returns policy documents URL-encoded JSON (boto3 decodes it) or a dict."""
    return json.loads(document) if isinstance(document, str) else document


def delete_head_role(iam: Any, name: str, cluster: str) -> None:
    """Delete the head's profile and role if rayctl made them for `cluster`."""
    role = call(iam, "get_role", RoleName=name, allow=("NoSuchEntity",))
    if role is None:
        return
    tags = tag_dict(role["Role"].get("Tags"))
    if not tags:  # get_role does not always carry tags
        tags = tag_dict(call(iam, "list_role_tags", RoleName=name)["Tags"])
    if tags.get(Tag.CLUSTER) != cluster:
        return  # not ours: a role of the same name made by someone else
    gone = ("NoSuchEntity",)
    call(
        iam,
        "remove_role_from_instance_profile",
        InstanceProfileName=name,
        RoleName=name,
        allow=gone,
    )
    call(iam, "delete_instance_profile", InstanceProfileName=name, allow=gone)
    call(iam, "delete_role_policy", RoleName=name, PolicyName=HEAD_POLICY_NAME, allow=gone)
    call(iam, "delete_role", RoleName=name, allow=gone)
