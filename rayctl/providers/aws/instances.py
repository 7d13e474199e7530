"""EC2 through boto3: instances launched with the node type's node_config (run_instances
arguments, as in Ray's AWS configs), found again by their tags, reached over SSH.

Truth is in EC2 tags: the cluster's instances, volumes, security group, key pair and the
head's IAM role all carry `rayctl-cluster`, so `down` from a machine with nothing but the
config finds and removes all of them. Credentials and endpoints are boto3's own (profile,
environment, SSO, AWS_ENDPOINT_URL; the head uses its instance profile).

Nodes are the cluster's pending and running instances. With cache_stopped_nodes (Ray's
default) a worker that is no longer needed is stopped instead of terminated; stopped
instances are a cache, not nodes: `list_nodes` leaves them out, `create_nodes` restarts ones
of the same node type and launch hash before launching new ones, and `cleanup` terminates
the rest.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import paramiko
from botocore.config import Config

from rayctl.config.schema import ClusterConfig
from rayctl.errors import CapacityError, ProviderError, TransientError
from rayctl.providers.aws import setup as aws_setup
from rayctl.providers.aws.config import AWSProviderConfig, wants_dlami
from rayctl.providers.aws.errors import call, paginate
from rayctl.providers.aws.setup import Subnet, tag_dict, tag_list
from rayctl.providers.base import Node, NodeKind, NodeState, RayStart, Tag, tagged
from rayctl.providers.cloud import await_address, create_reusing, reusable
from rayctl.providers.ssh_access import SSHAccess, connect_attempts_s, write_private_key
from rayctl.providers.ssh_access import key_path as ssh_key_path
from rayctl.runtime import head_paths
from rayctl.runtime.runner import CommandRunner
from rayctl.runtime.ssh_runner import SSHRunner, check_key_mode

LIVE = ("pending", "running")
CACHED = ("stopping", "stopped")
NOT_TERMINATED = (*LIVE, "shutting-down", *CACHED)
_STATES = {"pending": NodeState.PENDING, "running": NodeState.RUNNING}
BATCH = 500  # instance ids per API call (filters take at most 1,000 values)
# How long sshd on a new instance may take to answer.
CONNECT_ATTEMPTS_S = 300.0
CONFIRM_TIMEOUT_S = 120.0  # for AWS to report a stop or termination it accepted
CLEANUP_TIMEOUT_S = 900.0  # for instances to be terminated and their groups to be free
# Pauses before retrying a launch that failed for a passing reason (throttling, a new
# instance profile EC2 does not know yet).
LAUNCH_RETRY_DELAYS_S: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0)
# Zone-wide capacity errors; any other capacity error (a full subnet) tries the same zone's
# other subnets.
_SUBNET_ONLY = "InsufficientFreeAddressesInSubnet"
ANYWHERE = "0.0.0.0/0"  # SSH's default source, as in Ray (IPv4 only, as Ray)
# Forwarded to the head's monitor so it talks to the same endpoint (never credentials:
# the head has its instance profile).
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS")


@dataclass(frozen=True)
class _Launch:
    """What launching needs, found once per process (by `bootstrap`, or by lookup on the
    head, whose monitor never bootstraps)."""

    group_id: str
    subnets: dict[str, list[Subnet]]  # node type -> where to try, in order
    images: dict[str, str]  # node type -> ImageId, for types whose node_config has none
    head_profile: str | None  # the instance profile rayctl gives the head, if any
    templates: dict[str, dict[str, Any]]  # node type -> its launch template's data, if any


class AWSProvider:
    def __init__(self, config: ClusterConfig, *, home: Path) -> None:
        assert isinstance(config.provider, AWSProviderConfig)
        self.cluster_name = config.cluster_name
        self._config = config
        self._provider = config.provider
        self._region = config.provider.region
        self._home = home
        # boto3's standard retry mode already backs off throttled calls.
        session = boto3.session.Session(region_name=self._region)
        client_config = Config(retries={"mode": "standard", "max_attempts": 5})
        self.ec2 = session.client("ec2", config=client_config)
        self.iam = session.client("iam", config=client_config)
        self.sts = session.client("sts", config=client_config)
        self._lock = threading.Lock()
        self._launch: _Launch | None = None
        self._access = SSHAccess(
            config,
            home=home,
            key_path=self.key_path,
            attempts_s=connect_attempts_s(CONNECT_ATTEMPTS_S),
        )

    # -- names and keys -------------------------------------------------------------------

    @property
    def known_hosts(self) -> Path:
        return self._access.known_hosts

    @property
    def group_name(self) -> str:
        group = self._provider.security_group
        return (group and group.GroupName) or f"rayctl-{self.cluster_name}"

    @property
    def head_role(self) -> str:
        return aws_setup.head_role_name(self.cluster_name, self._region)

    @property
    def key_path(self) -> Path:
        """The config's private key, or the one rayctl creates for the cluster."""
        return ssh_key_path(self._config, self._home, lambda: self.key_name)

    @functools.cached_property
    def key_name(self) -> str:
        """The cluster's key pair (node_config KeyName overrides it per type): created by
        rayctl, or the config's public key imported under a name that follows its content."""
        base = f"rayctl-{self.cluster_name}-{self._region}"
        if not self._config.auth.ssh_private_key:
            return base
        blob = self._public_key().asbytes()
        return f"{base}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def _public_key(self) -> paramiko.PKey:
        check_key_mode(self.key_path)
        try:
            return paramiko.PKey.from_path(self.key_path)
        except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
            raise ProviderError(f"cannot read the ssh key {self.key_path}: {exc}") from None

    def _cluster_tags(self) -> dict[str, str]:
        return {Tag.CLUSTER: self.cluster_name, aws_setup.REGION_TAG: self._region}

    # -- describing instances -------------------------------------------------------------

    def _instances(
        self,
        states: Sequence[str],
        ids: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """The cluster's instances in `states` (optionally only `ids`, only with `tags`),
        every page of them. Ids filter rather than select, so unknown ids are not an error."""
        if ids is not None and not ids:
            return []
        base = [
            {"Name": f"tag:{Tag.CLUSTER}", "Values": [self.cluster_name]},
            {"Name": "instance-state-name", "Values": list(states)},
            *({"Name": f"tag:{k}", "Values": [v]} for k, v in (tags or {}).items()),
        ]
        batches = [list(ids[i : i + BATCH]) for i in range(0, len(ids), BATCH)] if ids else [[]]
        found = []
        for batch in batches:
            filters = [*base, {"Name": "instance-id", "Values": batch}] if batch else base
            for page in paginate(self.ec2, "describe_instances", Filters=filters):
                for reservation in page["Reservations"]:
                    found += reservation["Instances"]
        return found

    def _node(self, instance: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> Node:
        merged = {**(tags or {}), **tag_dict(instance.get("Tags"))}
        return Node(
            id=instance["InstanceId"],
            node_type=merged.get(Tag.NODE_TYPE, ""),
            kind=NodeKind(merged.get(Tag.KIND, NodeKind.WORKER.value)),
            state=_STATES.get(instance["State"]["Name"], NodeState.STOPPED),
            internal_ip=instance.get("PrivateIpAddress", ""),
            external_ip=instance.get("PublicIpAddress"),
            tags=merged,
            launched_at=instance["LaunchTime"].timestamp(),
        )

    # -- NodeProvider ---------------------------------------------------------------------

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(i) for i in self._instances(LIVE, tags=tag_filters)]
        return tagged(nodes, tag_filters)

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        call(self.ec2, "create_tags", Resources=[node_id], Tags=tag_list(tags))

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        node_tags = {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type}
        return create_reusing(
            count,
            lambda n: self._restart_cached(node_type, n, node_tags),
            lambda n: self._run(node_type, n, node_tags),
        )

    def _restart_cached(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """Start stopped workers of the same type and launch hash (Ray's cache_stopped_nodes)."""
        match = reusable(self._provider.cache_stopped_nodes, tags)
        if match is None:
            return []
        stopped = self._instances(("stopped",), tags=match)
        ids = sorted(i["InstanceId"] for i in stopped)[:count]
        if not ids or not self._start(ids):
            return []  # one of them is no longer stopped (another rayctl took it): launch anew
        self._tag(ids, tags)
        return [self._node(i, tags) for i in self._instances(LIVE, ids=ids)]

    def _start(self, ids: Sequence[str]) -> bool:
        """Start stopped instances; False when one of them is not stopped (nothing started)."""
        allow = ("IncorrectInstanceState",)
        return call(self.ec2, "start_instances", InstanceIds=list(ids), allow=allow) is not None

    def _batched(self, action: str, ids: Sequence[str]) -> None:
        """`action` (stop_instances, terminate_instances) on `ids`, BATCH at a time."""
        for start in range(0, len(ids), BATCH):
            call(self.ec2, action, InstanceIds=list(ids[start : start + BATCH]))

    # -- StopsNodes (autostop without `down`) -----------------------------------------------

    def stopped_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(i) for i in self._instances(CACHED, tags=tag_filters)]
        return tagged(nodes, tag_filters)

    def stop_nodes(self, ids: Sequence[str]) -> None:
        """Stop on-demand instances; spot ones, which EC2 does not stop, are terminated
        (`up` launches new ones for min_workers)."""
        instances = self._instances(LIVE, ids=ids)
        spot = [i["InstanceId"] for i in instances if i.get("InstanceLifecycle") == "spot"]
        stop = [i["InstanceId"] for i in instances if i["InstanceId"] not in spot]
        self._batched("stop_instances", stop)
        self._batched("terminate_instances", spot)
        self._await(list(ids), lambda i: i["State"]["Name"] not in LIVE)

    def start_nodes(self, ids: Sequence[str]) -> list[Node]:
        self._await(list(ids), lambda i: i["State"]["Name"] != "stopping")
        if ids and not self._start(ids):
            raise TransientError(
                f"instances {', '.join(ids)} are not all stopped; run `rayctl up` again"
            )
        return [self._node(i) for i in self._instances(LIVE, ids=ids)]

    def _tag(self, ids: Sequence[str], tags: Mapping[str, str]) -> None:
        call(self.ec2, "create_tags", Resources=list(ids), Tags=tag_list(tags))

    def _run(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """One run_instances call per subnet tried: the whole batch in one zone, or the next
        subnet (zone) when this one has no capacity for it."""
        launch = self._launch_context()
        params = self._run_params(node_type, count, tags, launch)
        failures: list[str] = []
        full_zones: set[str] = set()
        # Network interfaces name their own subnets: one attempt, with nowhere else to go.
        interfaces = "NetworkInterfaces" in params
        subnets = launch.subnets[node_type][:1] if interfaces else launch.subnets[node_type]
        for subnet in subnets:
            if subnet.zone in full_zones:
                continue
            try:
                placed = {} if interfaces else {"SubnetId": subnet.id}
                reply = self._run_instances({**params, **placed})
            except CapacityError as exc:
                failures.append(f"{subnet.id} ({subnet.zone}): {exc}")
                if _SUBNET_ONLY not in str(exc):
                    full_zones.add(subnet.zone)
                continue
            return [self._node(i, tags) for i in reply["Instances"]]
        instance_type = params.get("InstanceType", "the launch template's type")
        raise CapacityError(
            f"no capacity for {count} x {instance_type} ({node_type}) in any subnet tried: "
            + "; ".join(failures)
        )

    def _run_instances(self, params: dict[str, Any]) -> Any:
        """run_instances, retried after a pause when it failed for a passing reason. One
        client token for every retry of this request (botocore's and ours): a call that
        timed out after EC2 accepted it then returns the instances it launched instead of
        launching them again. (Another subnet is another request, with a token of its own.)"""
        token = uuid.uuid4().hex
        for delay in (*LAUNCH_RETRY_DELAYS_S, None):
            try:
                return call(self.ec2, "run_instances", ClientToken=token, **params)
            except TransientError:
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _run_params(
        self, node_type: str, count: int, tags: Mapping[str, str], launch: _Launch
    ) -> dict[str, Any]:
        node_config = dict(self._config.available_node_types[node_type].node_config)
        node_config.pop("SubnetIds", None)  # one of them per attempt
        kind = NodeKind(tags[Tag.KIND])
        own = {**tags, "Name": f"rayctl-{self.cluster_name}-{kind.value}"}
        params: dict[str, Any] = {
            **node_config,
            "MinCount": count,  # all or none in one zone (and moto launches MinCount)
            "MaxCount": count,
            "TagSpecifications": _tag_specifications(node_config.get("TagSpecifications", []), own),
        }
        params.setdefault("KeyName", self.key_name)
        if "NetworkInterfaces" not in params:  # else the interfaces name their groups (Ray)
            params.setdefault("SecurityGroupIds", [launch.group_id])
        if node_type in launch.images:  # no ImageId, or Ray's latest_dlami
            params["ImageId"] = launch.images[node_type]
        if kind is NodeKind.HEAD and launch.head_profile:
            params.setdefault("IamInstanceProfile", {"Name": launch.head_profile})
        return params | _imds(node_config, launch.templates.get(node_type))

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        """Terminate, or with cache_stopped_nodes stop running on-demand workers. When the
        head goes, everything given goes for good (`down`, a replaced head). Returns once
        AWS reports every instance stopping/stopped or shutting-down/terminated, so none is
        listed any more; `cleanup` waits for the end of termination."""
        instances = self._instances(NOT_TERMINATED, ids=ids)
        if not instances:
            return
        kinds = {tag_dict(i.get("Tags")).get(Tag.KIND) for i in instances}
        cache = self._provider.cache_stopped_nodes and NodeKind.HEAD.value not in kinds
        stop = [
            i["InstanceId"]
            for i in instances
            if cache and i["State"]["Name"] == "running" and i.get("InstanceLifecycle") != "spot"
        ]
        end = [
            i["InstanceId"]
            for i in instances
            if i["InstanceId"] not in stop
            and not (cache and i["State"]["Name"] in CACHED)
            and i["State"]["Name"] != "shutting-down"
        ]
        self._batched("stop_instances", stop)
        self._batched("terminate_instances", end)
        self._await([i["InstanceId"] for i in instances], lambda i: i["State"]["Name"] not in LIVE)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Nothing to forget: EC2's tags are the only record, and an instance that could
        not be terminated is still there (`down --force` lists it as one that may remain)."""

    def _await(
        self,
        ids: Sequence[str],
        done: Callable[[Mapping[str, Any]], bool],
        timeout_s: float = CONFIRM_TIMEOUT_S,
    ) -> None:
        """Poll until every instance of `ids` still there satisfies `done` (bounded)."""
        deadline = time.monotonic() + timeout_s
        delay = 0.5
        while True:
            waiting = [i for i in self._instances(NOT_TERMINATED, ids=ids) if not done(i)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                states = ", ".join(f"{i['InstanceId']} {i['State']['Name']}" for i in waiting)
                raise TransientError(
                    f"instances still {states} after {timeout_s:.0f} s; "
                    "run `rayctl up` or `rayctl down` again"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def runner(self, node: Node) -> SSHRunner:
        return self._access.runner(node.id, self._address(node))

    def _address(self, node: Node) -> str:
        internal = self._provider.use_internal_ips

        def lookup() -> tuple[str | None, bool] | None:
            found = self._instances(LIVE, ids=[node.id])
            if not found:
                return None
            key = "PrivateIpAddress" if internal else "PublicIpAddress"
            return found[0].get(key), found[0]["State"]["Name"] == "running"

        return await_address(
            node,
            internal=internal,
            lookup=lookup,
            missing="launch it in a subnet that maps public addresses, or set "
            "provider.use_internal_ips: true",
        )

    def ray_start_args(self, node: Node) -> RayStart:
        return self._access.cloud_ray_start_args(node)

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The monitor on the head calls AWS with the head's instance profile (no credentials
        are copied); it reaches workers with the cluster's SSH key and pinned host keys,
        copied to where its own provider looks for them (mode 0600)."""
        head_config = self._access.prepare_head(
            config, runner, created_key=head_paths.key_pair(self.key_name)
        )
        env = {k: os.environ[k] for k in _ENDPOINT_VARS if os.environ.get(k)}
        return head_config, env

    # -- bootstrap ------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Check credentials, look everything up and dry-run what will be created, then get
        or create the head's IAM role, the key pair and the security group. A missing
        credential or permission stops this before anything exists."""
        ident = aws_setup.identity(self.sts)
        subnets = self._subnets()
        vpc = _one_vpc(subnets)
        group = aws_setup.find_group(self.ec2, vpc, self.group_name)
        images, resolved = self._images(group)
        templates = self._templates()
        key = self._key_plan()
        role_needed = self._head_needs_role(templates)
        self._dry_run(vpc, group, key, subnets, images, templates)
        if role_needed:
            policy = aws_setup.head_policy(
                self.cluster_name, self._region, ident, self._worker_roles(templates), vpc
            )
            aws_setup.ensure_head_role(self.iam, self.head_role, policy, self._cluster_tags())
        if key is not None:
            self._ensure_key(key)
        group_id = self._ensure_group(vpc, group, resolved)
        self._access.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:
            self._launch = _Launch(
                group_id, subnets, images, self.head_role if role_needed else None, templates
            )

    def _launch_context(self) -> _Launch:
        """What bootstrap found; looked up (never created) in a process that did not
        bootstrap, such as the head's monitor."""
        with self._lock:
            if self._launch is not None:
                return self._launch
        subnets = self._subnets()
        group = aws_setup.find_group(self.ec2, _one_vpc(subnets), self.group_name)
        if group is None:
            raise ProviderError(
                f"the cluster's security group {self.group_name} does not exist: "
                "run `rayctl up` first"
            )
        images, _ = self._images(group)
        templates = self._templates()
        role = self.head_role if self._head_needs_role(templates) else None
        launch = _Launch(group["GroupId"], subnets, images, role, templates)
        with self._lock:
            self._launch = launch
        return launch

    def _subnets(self) -> dict[str, list[Subnet]]:
        default: list[Subnet] | None = None
        found = {}
        for name, node_type in self._config.available_node_types.items():
            ids = node_type.node_config.get("SubnetIds") or _interface_subnets(
                node_type.node_config
            )
            if ids:
                found[name] = aws_setup.named_subnets(self.ec2, ids)
                continue
            if default is None:
                default = aws_setup.default_subnets(
                    self.ec2,
                    self._region,
                    self._provider.zones,
                    public=not self._provider.use_internal_ips,
                )
            found[name] = default
        return found

    def _images(self, group: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
        """ImageId per node type without one (the newest Ubuntu LTS) or with Ray's
        `latest_dlami` (the newest Deep Learning AMI): pinned on the cluster's group when
        bootstrap resolved it (so the head launches what `up` launched), else looked up.
        Returns the images and the pins (family-architecture -> image) newly resolved."""
        pinned = {
            k.removeprefix(aws_setup.IMAGE_TAG): v
            for k, v in tag_dict((group or {}).get("Tags")).items()
            if k.startswith(aws_setup.IMAGE_TAG)
        }
        images: dict[str, str] = {}
        resolved: dict[str, str] = {}
        missing = []
        for name, node_type in self._config.available_node_types.items():
            node_config = node_type.node_config
            dlami = wants_dlami(node_config)
            if not dlami and ("ImageId" in node_config or "LaunchTemplate" in node_config):
                continue
            arch = aws_setup.architecture(self.ec2, node_config["InstanceType"])
            pin = f"dlami-{arch}" if dlami else arch
            lookup = aws_setup.dlami_image if dlami else aws_setup.ubuntu_image
            image = pinned.get(pin) or resolved.get(pin) or lookup(self.ec2, arch)
            if image is None:
                missing.append(f"{name} ({'a Deep Learning AMI' if dlami else 'Ubuntu'})")
                continue
            if pin not in pinned:
                resolved[pin] = image
            images[name] = image
        if missing:
            raise ProviderError(
                f"no image for node type(s) {', '.join(missing)} found in {self._region}; "
                "set node_config.ImageId to an AMI id"
            )
        return images, resolved

    def _templates(self) -> dict[str, dict[str, Any]]:
        """The data of each node type's launch template, for types launched from one."""
        return {
            name: aws_setup.launch_template_data(self.ec2, node_type.node_config["LaunchTemplate"])
            for name, node_type in self._config.available_node_types.items()
            if "LaunchTemplate" in node_type.node_config
        }

    def _head_needs_role(self, templates: Mapping[str, Mapping[str, Any]]) -> bool:
        """rayctl gives the head its role unless node_config or its template names one."""
        head = self._config.head_node_type
        chosen = {**templates.get(head, {}), **self._config.head_type.node_config}
        return "IamInstanceProfile" not in chosen

    def _worker_roles(self, templates: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The roles workers launch with (node_config's profile, else their template's):
        the head passes them to EC2."""
        roles: set[str] = set()
        for name, node_type in self._config.available_node_types.items():
            chosen = {**templates.get(name, {}), **node_type.node_config}
            profile = chosen.get("IamInstanceProfile")
            if name != self._config.head_node_type and isinstance(profile, dict):
                roles.update(aws_setup.profile_roles(self.iam, profile))
        return sorted(roles)

    def _dry_run(
        self,
        vpc: str,
        group: Mapping[str, Any] | None,
        key: _KeyPlan | None,
        subnets: Mapping[str, list[Subnet]],
        images: Mapping[str, str],
        templates: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Ask EC2 whether the creations would be allowed (DryRun), before any is made."""
        ok = ("DryRunOperation",)
        if group is None:
            call(
                self.ec2,
                "create_security_group",
                GroupName=self.group_name,
                Description="rayctl dry run",
                VpcId=vpc,
                DryRun=True,
                allow=ok,
            )
        if key is not None and not key.exists:
            method = "import_key_pair" if key.public else "create_key_pair"
            extra = {"PublicKeyMaterial": key.public} if key.public else {}
            call(self.ec2, method, KeyName=key.name, DryRun=True, allow=ok, **extra)
        skip = ("SubnetIds", "IamInstanceProfile", "KeyName", "SecurityGroupIds")
        for name, node_type in self._config.available_node_types.items():
            node_config = node_type.node_config
            params = {k: v for k, v in node_config.items() if k not in skip}
            if name in images:
                params["ImageId"] = images[name]
            if "NetworkInterfaces" not in node_config:
                params["SubnetId"] = subnets[name][0].id
            params |= {
                "MinCount": 1,
                "MaxCount": 1,
                "TagSpecifications": _tag_specifications(
                    node_config.get("TagSpecifications", []), self._cluster_tags()
                ),
                "DryRun": True,
            }
            params |= _imds(node_config, templates.get(name))
            call(self.ec2, "run_instances", allow=ok, **params)

    # -- key pair ---------------------------------------------------------------------------

    def _key_plan(self) -> _KeyPlan | None:
        """The cluster's key pair, unless every node type names its own KeyName."""
        types = self._config.available_node_types.values()
        if all("KeyName" in t.node_config for t in types):
            return None
        name = self.key_name
        found = call(
            self.ec2, "describe_key_pairs", KeyNames=[name], allow=("InvalidKeyPair.NotFound",)
        )
        exists = bool(found and found["KeyPairs"])
        public = None
        if self._config.auth.ssh_private_key:
            key = self._public_key()
            if key.get_name() not in ("ssh-rsa", "ssh-ed25519"):
                raise ProviderError(
                    f"EC2 accepts only RSA and ed25519 keys; {self.key_path} is {key.get_name()}"
                )
            public = f"{key.get_name()} {key.get_base64()}".encode()
        elif exists and not self.key_path.exists():
            if self._instances(NOT_TERMINATED):
                raise ProviderError(
                    f"the key pair {name} exists in AWS but its private key is not at "
                    f"{self.key_path}: it was created on another machine and AWS does not "
                    "hand it out again. Copy it there (mode 0600), or set "
                    "auth.ssh_private_key and node_config.KeyName to a key pair you have"
                )
            # No instance uses the pair: replace it with one whose key this machine has.
            return _KeyPlan(name, exists=False, public=None, replace=True)
        return _KeyPlan(name, exists, public)

    def _ensure_key(self, key: _KeyPlan) -> None:
        if key.exists:
            return
        if key.replace:
            call(self.ec2, "delete_key_pair", KeyName=key.name)
        spec = [{"ResourceType": "key-pair", "Tags": tag_list(self._cluster_tags())}]
        if key.public:
            call(
                self.ec2,
                "import_key_pair",
                KeyName=key.name,
                PublicKeyMaterial=key.public,
                TagSpecifications=spec,
            )
            return
        reply = call(
            self.ec2, "create_key_pair", KeyName=key.name, KeyType="ed25519", TagSpecifications=spec
        )
        write_private_key(self.key_path, reply["KeyMaterial"])

    # -- security group ---------------------------------------------------------------------

    def _ensure_group(
        self, vpc: str, group: Mapping[str, Any] | None, images: Mapping[str, str]
    ) -> str:
        """The cluster's group: all traffic within it, SSH from ssh_source_cidrs (default:
        anywhere, or the VPC with use_internal_ips), nothing else in. A group of that name
        rayctl did not create is used as it is."""
        if group is None:
            tags = {**self._cluster_tags(), "Name": self.group_name}
            group_id = call(
                self.ec2,
                "create_security_group",
                GroupName=self.group_name,
                Description=f"rayctl cluster {self.cluster_name}: intra-cluster traffic and SSH",
                VpcId=vpc,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
            )["GroupId"]
            group = {"GroupId": group_id, "IpPermissions": [], "Tags": tag_list(tags)}
        group_id = group["GroupId"]
        if tag_dict(group.get("Tags")).get(Tag.CLUSTER) != self.cluster_name:
            return group_id
        cidrs = self._provider.ssh_source_cidrs
        if cidrs is None:  # as Ray: from anywhere; from inside the VPC on internal addresses
            cidrs = (
                aws_setup.vpc_cidrs(self.ec2, vpc)
                if self._provider.use_internal_ips
                else [ANYWHERE]
            )
        extra = self._provider.security_group.IpPermissions if self._provider.security_group else []
        aws_setup.sync_rules(self.ec2, group, aws_setup.cluster_rules(group_id, cidrs, extra))
        if images:  # pin the resolved images: the head launches what `up` resolved
            pins = {f"{aws_setup.IMAGE_TAG}{pin}": image for pin, image in images.items()}
            self._tag([group_id], pins)
        return group_id

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Once no node is left: terminate the stopped (cached) instances, wait until every
        instance of the cluster is terminated, then delete what is tagged with the cluster:
        leftover volumes, the security group, the key pair rayctl made (and its local
        private key) and the head's role. Idempotent; needs nothing but the config."""
        live = self._instances(LIVE)
        if live:
            ids = ", ".join(i["InstanceId"] for i in live)
            raise ProviderError(
                f"cluster {self.cluster_name} still has running instances ({ids}); "
                "run `rayctl down` to remove them first"
            )
        self._remove_resources(keep=None)
        self._delete_head_role()

    def remove_from_head(self, head: Node) -> None:
        """Autostop with `down`: the head's monitor removes its own cluster once the workers
        are terminated or stopped. The head is an instance in the cluster's security group
        and runs with the head's role, so it leaves the group first, deletes the group,
        volumes and key pair, terminates itself, and deletes its role last (its credentials
        work until then). What a head stopped midway leaves, `rayctl down` removes."""
        others = [i["InstanceId"] for i in self._instances(LIVE) if i["InstanceId"] != head.id]
        if others:
            raise ProviderError(
                f"cluster {self.cluster_name} still has running workers ({', '.join(others)})"
            )
        self._leave_groups(head.id)
        self._remove_resources(keep=head.id)
        call(self.ec2, "terminate_instances", InstanceIds=[head.id])
        self._delete_head_role()

    def _leave_groups(self, instance_id: str) -> None:
        """Move the instance's network interfaces off the groups tagged with the cluster
        (which `_remove_resources` deletes), onto the VPC's default group where those were
        an interface's only ones."""
        (instance,) = self._instances(NOT_TERMINATED, ids=[instance_id])
        mine = [{"Name": f"tag:{Tag.CLUSTER}", "Values": [self.cluster_name]}]
        groups = call(self.ec2, "describe_security_groups", Filters=mine)["SecurityGroups"]
        cluster_groups = {g["GroupId"] for g in groups}
        for interface in instance.get("NetworkInterfaces", []):
            current = [g["GroupId"] for g in interface["Groups"]]
            kept = [g for g in current if g not in cluster_groups]
            if kept == current:
                continue
            if not kept:
                default = aws_setup.find_group(self.ec2, interface["VpcId"], "default")
                assert default is not None, "every VPC has a default security group"
                kept = [default["GroupId"]]
            call(
                self.ec2,
                "modify_network_interface_attribute",
                NetworkInterfaceId=interface["NetworkInterfaceId"],
                Groups=kept,
            )

    def _remove_resources(self, keep: str | None) -> None:
        """Terminate the cached instances, wait until every instance but `keep` is
        terminated, then delete the cluster's volumes (but those attached to `keep`), its
        security groups and the key pair rayctl made, with the local private key."""
        self._batched("terminate_instances", [i["InstanceId"] for i in self._instances(CACHED)])
        left = [i["InstanceId"] for i in self._instances(NOT_TERMINATED) if i["InstanceId"] != keep]
        if left:
            self._await(left, lambda i: False, timeout_s=CLEANUP_TIMEOUT_S)
        mine = [{"Name": f"tag:{Tag.CLUSTER}", "Values": [self.cluster_name]}]
        self._delete_volumes(mine, keep)
        for group in call(self.ec2, "describe_security_groups", Filters=mine)["SecurityGroups"]:
            aws_setup.delete_group(self.ec2, group["GroupId"], timeout_s=CLEANUP_TIMEOUT_S)
        for pair in call(self.ec2, "describe_key_pairs", Filters=mine)["KeyPairs"]:
            call(self.ec2, "delete_key_pair", KeyName=pair["KeyName"])
        if not self._config.auth.ssh_private_key:
            self.key_path.unlink(missing_ok=True)
        shutil.rmtree(self._access.state_dir, ignore_errors=True)  # host keys of gone instances
        with self._lock:
            self._launch = None

    def _delete_head_role(self) -> None:
        if "IamInstanceProfile" not in self._config.head_type.node_config:
            aws_setup.delete_head_role(self.iam, self.head_role, self.cluster_name)

    def _delete_volumes(self, mine: list[dict[str, Any]], keep: str | None) -> None:
        """Volumes launched with DeleteOnTermination false outlive their instance: `down`
        leaves nothing of the cluster behind. Those attached to `keep` stay with it."""
        deadline = time.monotonic() + CLEANUP_TIMEOUT_S
        while True:
            volumes = [
                v
                for v in call(self.ec2, "describe_volumes", Filters=mine)["Volumes"]
                if all(a.get("InstanceId") != keep for a in v.get("Attachments", []))
            ]
            for volume in volumes:
                if volume["State"] == "available":
                    call(
                        self.ec2,
                        "delete_volume",
                        VolumeId=volume["VolumeId"],
                        allow=("InvalidVolume.NotFound",),
                    )
            detaching = [v["VolumeId"] for v in volumes if v["State"] in ("in-use", "creating")]
            if not detaching:
                return
            if time.monotonic() > deadline:
                raise TransientError(f"volumes still attached: {', '.join(detaching)}")
            time.sleep(2)


@dataclass(frozen=True)
class _KeyPlan:
    name: str
    exists: bool
    public: bytes | None  # the config's public key to import; None: AWS creates the pair
    replace: bool = False  # a pair whose private key is lost (and no instance uses it)


def _interface_subnets(node_config: Mapping[str, Any]) -> list[str]:
    """The subnets node_config's NetworkInterfaces name, each once, in order."""
    return list(dict.fromkeys(i["SubnetId"] for i in node_config.get("NetworkInterfaces", [])))


def _one_vpc(subnets: Mapping[str, list[Subnet]]) -> str:
    vpcs = {s.vpc for found in subnets.values() for s in found}
    if len(vpcs) != 1:
        raise ProviderError(
            f"the node types' subnets are in {len(vpcs)} VPCs ({', '.join(sorted(vpcs))}): "
            "a cluster's nodes must share one VPC (and its security group)"
        )
    return vpcs.pop()


def _imds(node_config: Mapping[str, Any], template: Mapping[str, Any] | None) -> dict[str, Any]:
    """Instances require IMDSv2 unless node_config or its launch template sets
    MetadataOptions (a template's own choice is not overridden)."""
    if "MetadataOptions" in node_config or "MetadataOptions" in (template or {}):
        return {}
    return {"MetadataOptions": dict(aws_setup.IMDS_V2)}


def _tag_specifications(
    given: Iterable[Mapping[str, Any]], tags: Mapping[str, str]
) -> list[dict[str, Any]]:
    """node_config's TagSpecifications with rayctl's tags added to (and winning on) those of
    the instance and its volumes."""
    specs = {s["ResourceType"]: tag_dict(s.get("Tags")) for s in given}
    for resource in ("instance", "volume"):
        specs[resource] = {**specs.get(resource, {}), **tags}
    return [{"ResourceType": r, "Tags": tag_list(t)} for r, t in specs.items()]
