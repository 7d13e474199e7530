"""Compute Engine through google-cloud-compute (REST): instances launched from the node type's
node_config (the Instance resource, as in Ray's GCP configs), found again by their labels,
reached over SSH.

Truth is in labels: the cluster's instances and their disks carry `rayctl-cluster` (and
rayctl's other tags, encoded to GCE's label rules by labels.py), so `down` from a machine
with nothing but the config finds all of them. An instance's id is its name (unique in the
project); its zone is looked up from the listing.

Nodes are the cluster's PROVISIONING, STAGING and RUNNING instances. A TERMINATED instance
is stopped: a preempted spot/preemptible one (gone for good) or, with cache_stopped_nodes, an
on-demand worker kept for reuse. Stopped instances are never nodes: `create_nodes` starts
cached ones of the same type and launch hash first, `cleanup` deletes the rest.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import functools
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import Credentials
from google.cloud import compute_v1

from rayctl.config.schema import ClusterConfig
from rayctl.errors import CapacityError, ProviderError, TransientError
from rayctl.providers.base import Node, NodeKind, NodeState, RayStart, Tag, tagged
from rayctl.providers.cloud import await_address, create_reusing, reusable
from rayctl.providers.gcp import labels
from rayctl.providers.gcp import setup as gcp_setup
from rayctl.providers.gcp.config import SSH_KEYS, GCPProviderConfig
from rayctl.providers.gcp.errors import call, operation_error
from rayctl.providers.ssh_access import SSHAccess, connect_attempts_s, public_key_line
from rayctl.providers.ssh_access import key_path as ssh_key_path
from rayctl.runtime import head_paths
from rayctl.runtime.runner import CommandRunner
from rayctl.runtime.ssh_runner import SSHRunner

_STATES = {
    "PROVISIONING": NodeState.PENDING,
    "STAGING": NodeState.PENDING,
    "RUNNING": NodeState.RUNNING,
}
STOPPED = ("STOPPING", "TERMINATED", "SUSPENDING", "SUSPENDED")
PAGE = 500  # instances per listing page (GCE's most)
OPERATION_TIMEOUT_S = 300.0  # for GCE to finish an insert, start, stop or delete
CONNECT_ATTEMPTS_S = 300.0
CONFIRM_TIMEOUT_S = 300.0
PARALLEL_CALLS = 16  # deletes/stops in flight at once (GCE has no batch delete)


@dataclasses.dataclass(frozen=True)
class _Instance:
    """What rayctl reads of an instance."""

    name: str
    zone: str
    status: str
    labels: dict[str, str]
    label_fingerprint: str
    internal_ip: str
    external_ip: str | None
    spot: bool
    created: float

    @property
    def tags(self) -> dict[str, str]:
        return labels.from_labels(self.labels)


def _read(instance: compute_v1.Instance) -> _Instance:
    nic = instance.network_interfaces[0] if instance.network_interfaces else None
    nat = nic.access_configs[0].nat_i_p if nic and nic.access_configs else ""
    scheduling = instance.scheduling
    created = instance.creation_timestamp
    return _Instance(
        name=instance.name,
        zone=instance.zone.rsplit("/", 1)[-1],
        status=instance.status,
        labels=dict(instance.labels),
        label_fingerprint=instance.label_fingerprint,
        internal_ip=nic.network_i_p if nic else "",
        external_ip=nat or None,
        spot=scheduling.provisioning_model == "SPOT" or bool(scheduling.preemptible),
        created=_timestamp(created),
    )


def _timestamp(rfc3339: str) -> float:
    try:
        return datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return 0.0


class GCPProvider:
    def __init__(
        self, config: ClusterConfig, *, home: Path, credentials: Credentials | None = None
    ) -> None:
        assert isinstance(config.provider, GCPProviderConfig)
        self.cluster_name = config.cluster_name
        self._config = config
        self._provider = config.provider
        self._home = home
        self._given_credentials = credentials
        self._lock = threading.Lock()
        self._zones: dict[str, str] = {}  # instance name -> zone, as last listed
        self._access_ssh = SSHAccess(
            config,
            home=home,
            key_path=self.key_path,
            attempts_s=connect_attempts_s(CONNECT_ATTEMPTS_S),
        )

    # -- clients and names --------------------------------------------------------------

    @functools.cached_property
    def gcp(self) -> gcp_setup.Access:
        return gcp_setup.access(self._provider, self._given_credentials)

    @functools.cached_property
    def instances(self) -> Any:
        return self.gcp.compute(compute_v1.InstancesClient)

    @functools.cached_property
    def zone_operations(self) -> Any:
        return self.gcp.compute(compute_v1.ZoneOperationsClient)

    @property
    def project(self) -> str:
        return self.gcp.project

    @property
    def known_hosts(self) -> Path:
        return self._access_ssh.known_hosts

    @property
    def key_name(self) -> str:
        return f"rayctl-gcp-{gcp_setup.cluster_slug(self.cluster_name)}"

    @property
    def key_path(self) -> Path:
        """The config's private key, or the one rayctl creates for the cluster."""
        return ssh_key_path(self._config, self._home, lambda: self.key_name)

    def _cluster_filter(self) -> str:
        value = labels.encode_value(self.cluster_name)
        return f'labels.{Tag.CLUSTER} = "{value}"'

    # -- listing ------------------------------------------------------------------------

    def _list(self) -> list[_Instance]:
        """Every instance of the cluster in the project, whatever its state: one
        aggregatedList filtered by the cluster's label, every page of it."""
        request = compute_v1.AggregatedListInstancesRequest(
            project=self.project,
            filter=self._cluster_filter(),
            max_results=PAGE,
        )

        def fetch() -> list[_Instance]:
            found = []
            for _, scoped in self.instances.aggregated_list(request=request):
                found += [_read(i) for i in scoped.instances]
            return found

        found = call(fetch, "compute.instances.list")
        mine = [i for i in found if i.tags.get(Tag.CLUSTER) == self.cluster_name]
        with self._lock:
            self._zones.update({i.name: i.zone for i in mine})
        return mine

    def _node(self, instance: _Instance) -> Node:
        tags = instance.tags
        return Node(
            id=instance.name,
            node_type=tags.get(Tag.NODE_TYPE, ""),
            kind=NodeKind(tags.get(Tag.KIND, NodeKind.WORKER.value)),
            state=_STATES.get(instance.status, NodeState.STOPPED),
            internal_ip=instance.internal_ip,
            external_ip=instance.external_ip,
            tags=tags,
            launched_at=instance.created,
        )

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(i) for i in self._list() if i.status in _STATES]
        return tagged(nodes, tag_filters)

    # -- tags -------------------------------------------------------------------------------

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """setLabels with the instance's label fingerprint; another writer in between (412)
        means read again and retry. An instance that is gone (preempted and deleted) has
        nothing to tag: the next listing no longer has it."""
        zone = self._zone(node_id)
        for _ in range(8):
            instance = (
                None
                if zone is None
                else call(
                    self.instances.get,
                    "compute.instances.get",
                    allow=(gexc.NotFound,),
                    project=self.project,
                    zone=zone,
                    instance=node_id,
                )
            )
            if instance is None:
                return
            request = compute_v1.InstancesSetLabelsRequest(
                labels=labels.merged(dict(instance.labels), tags),
                label_fingerprint=instance.label_fingerprint,
            )
            op = call(
                self.instances.set_labels_unary,
                "compute.instances.setLabels",
                allow=(gexc.PreconditionFailed,),  # another writer came first: read again
                project=self.project,
                zone=zone,
                instance=node_id,
                instances_set_labels_request_resource=request,
            )
            if op is None:
                continue
            self._wait(op, zone, "compute.instances.setLabels")
            return
        raise TransientError(f"the labels of {node_id} kept changing under rayctl; try again")

    def _zone(self, name: str) -> str | None:
        """The instance's zone (listed again when not known yet); None when it is gone."""
        with self._lock:
            zone = self._zones.get(name)
        if zone is None:
            self._list()
            with self._lock:
                zone = self._zones.get(name)
        return zone

    # -- operations ---------------------------------------------------------------------

    def _wait(self, op: compute_v1.Operation, zone: str, action: str, timeout_s: float = 0) -> None:
        """Until the zone operation is DONE (bounded), then raise its error if it failed."""
        deadline = time.monotonic() + (timeout_s or OPERATION_TIMEOUT_S)
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise TransientError(
                    f"{action} in {zone} did not finish in {timeout_s or OPERATION_TIMEOUT_S:.0f}"
                    f" s (operation {op.name}); run `rayctl up` or `rayctl down` again"
                )
            op = call(
                self.zone_operations.wait,
                action,
                project=self.project,
                zone=zone,
                operation=op.name,
            )
        error = operation_error(op, f"{action} in {zone}")
        if error is not None:
            raise error

    # -- launching ----------------------------------------------------------------------

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        node_tags = {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type}
        return create_reusing(
            count,
            lambda n: self._restart_cached(node_type, n, node_tags),
            lambda n: self._bulk_insert(node_type, n, node_tags),
        )

    def _restart_cached(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """Start stopped on-demand workers of the same type and launch hash."""
        match = reusable(self._provider.cache_stopped_nodes, tags)
        if match is None:
            return []
        cached = [
            i
            for i in self._list()
            if i.status == "TERMINATED"
            and not i.spot
            and all(i.tags.get(k) == v for k, v in match.items())
        ]
        chosen = sorted(cached, key=lambda i: i.name)[:count]
        if not chosen:
            return []
        self._start(chosen)
        for instance in chosen:
            self.set_tags(instance.name, tags)
        names = {i.name for i in chosen}
        return [self._node(i) for i in self._list() if i.name in names and i.status in _STATES]

    def _bulk_insert(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        """One bulkInsert for the whole batch in one zone, or the next zone when this one
        has no capacity (or does not offer the machine type); CapacityError names every
        zone tried."""
        properties = self._properties(node_type, tags)
        failures: list[str] = []
        zones = self._provider.zones
        for zone in zones:
            batch = uuid.uuid4().hex[:8]
            resource = compute_v1.BulkInsertInstanceResource(
                count=count,
                min_count=count,  # all or none in a zone: no half batch to clean up
                name_pattern=f"rayctl-{gcp_setup.cluster_slug(self.cluster_name)[:30]}-"
                f"{batch}-####",
                instance_properties=properties,
            )
            action = "compute.instances.create"
            try:
                op = call(
                    self.instances.bulk_insert_unary,
                    action,
                    project=self.project,
                    zone=zone,
                    bulk_insert_instance_resource_resource=resource,
                )
                self._wait(op, zone, action)
            except CapacityError as exc:
                failures.append(f"{zone}: {exc}")
                continue
            found = [i for i in self._list() if f"-{batch}-" in i.name]
            return [self._node(i) for i in found]
        machine = properties.machine_type or "the template's machine type"
        raise CapacityError(
            f"no capacity for {count} x {machine} ({node_type}) in zones "
            f"{', '.join(zones)}: " + "; ".join(failures)
        )

    def _properties(self, node_type: str, tags: Mapping[str, str]) -> compute_v1.InstanceProperties:
        """node_config as bulkInsert's instanceProperties, with rayctl's labels on the
        instance and its disks, the cluster's network tag, the SSH key in the instance's
        metadata (never the project's), and the head's service account."""
        node_config = _normalized(self._config.available_node_types[node_type].node_config)
        own = labels.to_labels(tags)
        node_config["labels"] = {**node_config.get("labels", {}), **own}
        for disk in node_config.get("disks", []):
            params = disk.setdefault("initializeParams", {})
            params["labels"] = {**params.get("labels", {}), **own}
        network_tags = node_config.setdefault("tags", {}).setdefault("items", [])
        network_tags.append(gcp_setup.network_tag(self.cluster_name))
        node_config.setdefault("networkInterfaces", [self._default_interface()])
        items = node_config.setdefault("metadata", {}).setdefault("items", [])
        line = f"{self._config.auth.ssh_user}:{self._public_key_line()}"
        given = next((i for i in items if i.get("key") == SSH_KEYS), None)
        if given is None:
            items.append({"key": SSH_KEYS, "value": line})
        elif line not in given.get("value", ""):
            given["value"] = f"{given.get('value', '').rstrip()}\n{line}".lstrip()
        if NodeKind(tags[Tag.KIND]) is NodeKind.HEAD and "serviceAccounts" not in node_config:
            node_config["serviceAccounts"] = [
                {"email": self._head_account(), "scopes": list(gcp_setup.SCOPES)}
            ]
        try:
            return compute_v1.InstanceProperties.from_json(json.dumps(node_config))
        except (ValueError, TypeError) as exc:
            raise ProviderError(
                f"available_node_types.{node_type}.node_config is not a GCE Instance: {exc}"
            ) from None

    def _default_interface(self) -> dict[str, Any]:
        interface: dict[str, Any] = {"network": self._provider.network}
        if not self._provider.use_internal_ips:
            interface["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
        return interface

    def _head_account(self) -> str:
        return self._provider.service_account or gcp_setup.service_account_email(
            self.cluster_name, self.project
        )

    # -- keys ----------------------------------------------------------------------------

    def _public_key_line(self) -> str:
        """`TYPE BASE64 COMMENT` of the cluster's key (made here on first use)."""
        return public_key_line(
            self.key_path,
            create=not self._config.auth.ssh_private_key,
            comment=f"rayctl-{self.key_name}",
        )

    # -- terminating -------------------------------------------------------------------------

    def _each(
        self,
        instances: Sequence[_Instance],
        method: Callable[..., Any],
        action: str,
    ) -> None:
        """Call `method(project, zone, instance)` for each, PARALLEL_CALLS at a time, and
        wait for every operation; a vanished instance (404) is done."""

        def one(instance: _Instance) -> None:
            op = call(
                method,
                action,
                allow=(gexc.NotFound,),
                project=self.project,
                zone=instance.zone,
                instance=instance.name,
            )
            if op is not None:
                self._wait(op, instance.zone, action)

        if not instances:
            return
        with concurrent.futures.ThreadPoolExecutor(min(PARALLEL_CALLS, len(instances))) as pool:
            for future in [pool.submit(one, i) for i in instances]:
                future.result()

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        """Delete, or with cache_stopped_nodes stop running on-demand workers (never spot or
        preemptible ones). When the head goes, everything given goes for good. Returns once
        GCE reports none of them running."""
        wanted = set(ids)
        found = [i for i in self._list() if i.name in wanted]
        if not found:
            return
        kinds = {i.tags.get(Tag.KIND) for i in found}
        cache = self._provider.cache_stopped_nodes and NodeKind.HEAD.value not in kinds
        stop = [i for i in found if cache and i.status == "RUNNING" and not i.spot]
        cached = [i for i in found if cache and i.status in STOPPED and not i.spot]
        delete = [i for i in found if i not in stop and i not in cached]
        self._each(delete, self.instances.delete_unary, "compute.instances.delete")
        self._stop(stop)
        self._confirm({i.name for i in delete}, gone=True)

    def _stop(self, instances: Sequence[_Instance]) -> None:
        """Stop the instances and confirm they are stopped."""
        self._each(instances, self.instances.stop_unary, "compute.instances.stop")
        self._confirm({i.name for i in instances}, gone=False)

    def _start(self, instances: Sequence[_Instance]) -> None:
        self._each(instances, self.instances.start_unary, "compute.instances.start")

    # -- StopsNodes (autostop without `down`) -------------------------------------------------

    def stopped_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(i) for i in self._list() if i.status in STOPPED]
        return tagged(nodes, tag_filters)

    def stop_nodes(self, ids: Sequence[str]) -> None:
        wanted = set(ids)
        self._stop([i for i in self._list() if i.name in wanted and i.status in _STATES])

    def start_nodes(self, ids: Sequence[str]) -> list[Node]:
        wanted = set(ids)
        self._confirm(wanted, gone=False)  # any still stopping has stopped
        self._start([i for i in self._list() if i.name in wanted and i.status == "TERMINATED"])
        return [self._node(i) for i in self._list() if i.name in wanted and i.status in _STATES]

    def _confirm(
        self, names: set[str], *, gone: bool, timeout_s: float = CONFIRM_TIMEOUT_S
    ) -> None:
        """Until none of `names` is listed (gone) or running (stopped), bounded."""
        deadline = time.monotonic() + timeout_s
        delay = 0.2
        while names:
            left = [
                i
                for i in self._list()
                if i.name in names and (gone or i.status not in ("TERMINATED",))
            ]
            if not left:
                return
            if time.monotonic() > deadline:
                states = ", ".join(f"{i.name} {i.status}" for i in left)
                raise TransientError(
                    f"instances still {states} after {timeout_s:.0f} s; "
                    "run `rayctl up` or `rayctl down` again"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Nothing to forget: the labels are the only record."""

    # -- reaching nodes -----------------------------------------------------------------------

    def runner(self, node: Node) -> SSHRunner:
        return self._access_ssh.runner(node.id, self._address(node))

    def _address(self, node: Node) -> str:
        internal = self._provider.use_internal_ips

        def lookup() -> tuple[str | None, bool] | None:
            found = [i for i in self._list() if i.name == node.id and i.status in _STATES]
            if not found:
                return None  # preempted or deleted: never retried over SSH
            address = found[0].internal_ip if internal else found[0].external_ip
            return address, found[0].status == "RUNNING"

        return await_address(
            node,
            internal=internal,
            lookup=lookup,
            missing="give it an accessConfig, or set provider.use_internal_ips: true",
        )

    def ray_start_args(self, node: Node) -> RayStart:
        return self._access_ssh.cloud_ray_start_args(node)

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The head's monitor calls GCP as the head's service account (no credentials are
        copied); it reaches workers with the cluster's key and pinned host keys."""
        head_config = self._access_ssh.prepare_head(
            config, runner, created_key=head_paths.key_pair(self.key_name)
        )
        env = {k: os.environ[k] for k in gcp_setup.ENV_VARS if os.environ.get(k)}
        return head_config, env

    # -- bootstrap and cleanup ------------------------------------------------------------------

    def _wanted_permissions(self) -> list[str]:
        wanted = list(gcp_setup.LAUNCH_PERMISSIONS)
        if not self._provider.use_internal_ips:
            wanted += gcp_setup.EXTERNAL_IP_PERMISSIONS
        if self._provider.service_account is None:
            wanted += gcp_setup.SERVICE_ACCOUNT_PERMISSIONS
        else:
            wanted += ["iam.serviceAccounts.actAs", "compute.instances.setServiceAccount"]
        return wanted

    def bootstrap(self) -> None:
        """Credentials and permissions first (nothing is created when one is missing),
        then the SSH key, the firewall rules and the head's service account."""
        gcp_setup.check_permissions(self.gcp, self._wanted_permissions())
        for name in self._config.available_node_types:  # each node_config parses (and the
            self._properties(name, {Tag.KIND: NodeKind.WORKER.value})  # key is made)
        self._access_ssh.check_key()
        rules = gcp_setup.firewall_rules(self.cluster_name, self._provider)
        gcp_setup.ensure_firewall(self.gcp, self.cluster_name, rules)
        if self._makes_head_account:
            gcp_setup.ensure_service_account(self.gcp, self.cluster_name, self._provider.network)

    @property
    def _makes_head_account(self) -> bool:
        """Whether the head runs as an account rayctl makes (and removes) for it."""
        head_names_one = "serviceAccounts" in self._config.head_type.node_config
        return self._provider.service_account is None and not head_names_one

    def cleanup(self) -> None:
        """Once no node is left: delete the stopped instances, wait until none of the
        cluster's is left, then its leftover disks, firewall rules, the head's service
        account rayctl created and the key rayctl made. Idempotent; needs only the config."""
        instances = self._list()
        live = [i.name for i in instances if i.status in _STATES]
        if live:
            raise ProviderError(
                f"cluster {self.cluster_name} still has running instances ({', '.join(live)}); "
                "run `rayctl down` to remove them first"
            )
        self._each(instances, self.instances.delete_unary, "compute.instances.delete")
        self._confirm({i.name for i in instances}, gone=True)
        self._delete_disks()
        names = [f.name for f in gcp_setup.cluster_firewalls(self.gcp, self.cluster_name)]
        gcp_setup.delete_firewall(self.gcp, names)
        if self._provider.service_account is None:
            gcp_setup.delete_service_account(self.gcp, self.cluster_name)
        if not self._config.auth.ssh_private_key:
            self.key_path.unlink(missing_ok=True)
        shutil.rmtree(self._access_ssh.state_dir, ignore_errors=True)

    def remove_from_head(self, head: Node) -> None:
        """Autostop with `down`, on the head once the workers are deleted: delete the stopped
        instances, the cluster's disks but the head's, its firewall rules (by name: the head
        may delete them, not list the project's; its own calls go out as egress, which the
        rules never restrict), then the head's instance without waiting (deleting it shuts
        this machine down), and last the account it runs as, when rayctl made it: the
        credentials work until then. The account's roles on the project stay, inert, as
        `deleted:` members (the head may not edit the project's policy): IAM drops them
        within 60 days, `rayctl down` at once. What a head stopped midway leaves (the
        account, a head disk with autoDelete false) the next `rayctl down` removes."""
        instances = self._list()
        others = [i.name for i in instances if i.status in _STATES and i.name != head.id]
        if others:
            raise ProviderError(
                f"cluster {self.cluster_name} still has running workers ({', '.join(others)})"
            )
        stopped = [i for i in instances if i.name != head.id]
        self._each(stopped, self.instances.delete_unary, "compute.instances.delete")
        self._confirm({i.name for i in stopped}, gone=True)
        self._delete_disks(keep=head.id)
        rules = gcp_setup.firewall_rules(self.cluster_name, self._provider)
        gcp_setup.delete_firewall(self.gcp, [r.name for r in rules])
        zone = self._zone(head.id)
        if zone is not None:
            call(
                self.instances.delete_unary,
                "compute.instances.delete",
                allow=(gexc.NotFound,),
                project=self.project,
                zone=zone,
                instance=head.id,
            )
        if self._makes_head_account:
            gcp_setup.delete_account(self.gcp, self.cluster_name)

    def _delete_disks(self, keep: str | None = None) -> None:
        """Disks made with autoDelete false outlive their instance: `down` leaves nothing
        labelled with the cluster. Those attached to instance `keep` stay with it."""
        disks = self.gcp.compute(compute_v1.DisksClient)
        request = compute_v1.AggregatedListDisksRequest(
            project=self.project, filter=self._cluster_filter(), max_results=PAGE
        )

        def fetch() -> list[tuple[str, str]]:
            return [
                (zone.rsplit("/", 1)[-1], d.name)
                for zone, scoped in disks.aggregated_list(request=request)
                for d in scoped.disks
                if labels.from_labels(dict(d.labels)).get(Tag.CLUSTER) == self.cluster_name
                and all(user.rsplit("/", 1)[-1] != keep for user in d.users)
            ]

        for zone, name in call(fetch, "compute.disks.list"):
            op = call(
                disks.delete_unary,
                "compute.disks.delete",
                allow=(gexc.NotFound,),
                project=self.project,
                zone=zone,
                disk=name,
            )
            if op is not None:
                self._wait(op, zone, "compute.disks.delete")


def _normalized(node_config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of node_config in the API's shapes: Ray's examples give `scheduling` as a list
    of one mapping and `guestAccelerators` as one mapping; the machine and accelerator types
    are names in the zone (the zone is chosen per attempt)."""
    out = copy.deepcopy(dict(node_config))
    scheduling = out.get("scheduling")
    if isinstance(scheduling, list):
        out["scheduling"] = {k: v for part in scheduling for k, v in part.items()}
    accelerators = out.get("guestAccelerators")
    if isinstance(accelerators, dict):
        out["guestAccelerators"] = [accelerators]
    if isinstance(out.get("machineType"), str):
        out["machineType"] = out["machineType"].rsplit("/", 1)[-1]
    for accelerator in out.get("guestAccelerators", []):
        if isinstance(accelerator.get("acceleratorType"), str):
            accelerator["acceleratorType"] = accelerator["acceleratorType"].rsplit("/", 1)[-1]
    return out
