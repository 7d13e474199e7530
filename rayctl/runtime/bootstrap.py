"""Bring one node from created to running Ray, one reported stage at a time.

waiting-for-ssh (waiting-for-node for nodes on this machine, which are not reached over SSH)
-> syncing-files -> setting-up -> starting-ray -> ready (or failed). Bootstrap
takes the node, how to reach it (NodeAccess: its runner and the flags its provider adds to
`ray start`), what to set up (the config) and a callback; it never lists or tags nodes. Each
stage change reaches the callback with the tags to record on the node (its STATUS, the
hashes of what is done), and the caller records them (providers.base.recording). Stages
whose hash tag already matches are skipped, so re-running bootstrap on an unchanged node
costs a liveness probe.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from rayctl.config import start_commands
from rayctl.config.hashes import launch_hash, runtime_hash, start_hash
from rayctl.config.schema import ClusterConfig
from rayctl.errors import AuthError, BootstrapError, RayctlError
from rayctl.runtime import detached, docker
from rayctl.runtime.install import (
    RuntimeInstallError,
    ensure_runtime,
    runtime_identity,
    runtime_path_export,
    runtime_python,
    sync_wheelhouse,
)
from rayctl.runtime.nodes import RAY_GCS_PORT, Node, NodeKind, NodeStatus, RayStart, Tag
from rayctl.runtime.ray_adapter import RayUnreachable, gcs_listening, list_ray_nodes
from rayctl.runtime.ray_auth import ClusterAuth, TokenError
from rayctl.runtime.runner import (
    TAIL_LINES,
    CommandResult,
    CommandRunner,
    NodeUnreachable,
    TransferError,
)
from rayctl.templates import render

NODE_START_TIMEOUT_S = float(os.environ.get("RAYCTL_NODE_START_TIMEOUT_S", "120"))


class Outcome(enum.StrEnum):
    """What bootstrap did to a node."""

    STARTED = "started"  # Ray was not running and now is
    RESTARTED = "restarted"  # start commands or resources changed
    SET_UP = "set up again"  # mounts or setup commands changed; Ray left running
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class NodeSpec:
    """What a node of one type and kind should be; its hashes go into the node's tags."""

    node_type: str
    kind: NodeKind
    launch_hash: str
    runtime_hash: str
    start_hash: str

    @classmethod
    def of(cls, config: ClusterConfig, node_type: str, kind: NodeKind) -> NodeSpec:
        head = kind is NodeKind.HEAD
        return cls(
            node_type=node_type,
            kind=kind,
            launch_hash=launch_hash(config, node_type),
            runtime_hash=runtime_hash(config, node_type, head=head, runtime=runtime_identity()),
            start_hash=start_hash(config, node_type, head=head),
        )

    def launch_tags(self, request_id: str) -> dict[str, str]:
        return {
            Tag.KIND: self.kind.value,
            Tag.LAUNCH_HASH: self.launch_hash,
            Tag.STATUS: NodeStatus.UNINITIALIZED.value,
            Tag.LAUNCH_REQUEST: request_id,
        }


@dataclass(frozen=True)
class StageChange:
    """What bootstrap reports about a node: the stage it is in, the tags to record on it
    (none when nothing needs writing), and for a failure the failing output's tail."""

    stage: NodeStatus
    tags: dict[str, str] = field(default_factory=dict)
    detail: str = ""


StageCallback = Callable[[Node, StageChange], None]


class NodeAccess(Protocol):
    """The two things bootstrap needs from where a node came from (a NodeProvider has both):
    a runner for it, and the flags its provider adds to each start of its Ray."""

    def runner(self, node: Node) -> CommandRunner: ...

    def ray_start_args(self, node: Node) -> RayStart: ...


class HeadFailed(BootstrapError):
    """A worker did not start Ray because its head failed."""


class HeadGate:
    """Lets workers bootstrap alongside their head: everything before starting Ray runs at
    once, and a worker's Ray starts as soon as the head's GCS answers (Ray then spends
    seconds before the head itself registers)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._head: Node | None = None
        self._restarted = False
        self._failure = ""

    @classmethod
    def of(cls, head: Node) -> HeadGate:
        """A gate for a head that runs as it is (the autoscaler's)."""
        gate = cls()
        gate.open(head, restarted=False)
        return gate

    def open(self, head: Node, *, restarted: bool) -> None:
        """The head's GCS answers; `restarted`: workers of its old Ray must restart."""
        self._head, self._restarted = head, restarted
        self._open.set()

    def fail(self, why: str) -> None:
        if not self._open.is_set():  # a head that failed after its GCS answered stays open
            self._failure = why
            self._open.set()

    def wait(self, node: Node, stage: NodeStatus) -> tuple[Node, bool]:
        """The head and whether it restarted; raises for `node` if the head failed."""
        self._open.wait()
        if self._head is None:
            raise HeadFailed(node.id, stage.value, f"the head failed: {self._failure}")
        return self._head, self._restarted


def demand_pull_period_ms(max_workers: int) -> int:
    """How often the head's GCS pulls each raylet's pending demand, which is how fast the
    monitor can see it. Ray's default, 1000 ms, makes new demand wait half a second on
    average; one millisecond per allowed worker (100 to 1000 ms) keeps the GCS at about
    1,000 such pulls a second however large the cluster grows."""
    return min(1000, max(100, max_workers))


def ray_resource_args(config: ClusterConfig, node_type: str) -> list[str]:
    """`ray start` flags for a node type's resources and labels."""
    node = config.available_node_types[node_type]
    resources = dict(node.resources)
    args = []
    for name, flag in (
        ("CPU", "--num-cpus"),
        ("GPU", "--num-gpus"),
        ("memory", "--memory"),
        ("object_store_memory", "--object-store-memory"),
    ):
        if name in resources:
            args.append(f"{flag}={int(resources.pop(name))}")
    if resources:
        args.append(f"--resources={json.dumps(resources, sort_keys=True)}")
    if node.labels:
        args.append("--labels=" + ",".join(f"{k}={v}" for k, v in sorted(node.labels.items())))
    return args


class Bootstrapper:
    """Bootstraps nodes of one config; thread-safe (one call per node at a time). `auth` is
    the cluster's Ray authentication on the machine that runs it: its token goes to each node
    before Ray starts there, and this machine's probes of Ray present it."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        auth: ClusterAuth,
        on_stage: StageCallback,
        log_dir: Path | None = None,
    ) -> None:
        self._config = config
        self._auth = auth
        self._on_stage = on_stage
        self._log_dir = log_dir

    def bootstrap(
        self, node: Node, access: NodeAccess, gate: HeadGate, *, wait: bool = True
    ) -> Outcome:
        """Run the stages `node` needs, reaching it through `access`. The head opens `gate`
        once its GCS answers; a worker waits for it before starting Ray, and restarts Ray if
        the head restarted. Raises BootstrapError after reporting the node failed (a failed
        head fails the gate)."""
        is_head = node.kind is NodeKind.HEAD
        try:
            return self._bootstrap(node, access, gate, wait=wait or is_head)
        except BaseException as exc:  # whatever stops the head, its workers must not wait on
            if is_head:
                gate.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise

    def _bootstrap(self, node: Node, access: NodeAccess, gate: HeadGate, *, wait: bool) -> Outcome:
        is_head = node.kind is NodeKind.HEAD
        spec = NodeSpec.of(self._config, node.node_type, node.kind)
        runner = access.runner(node)
        container = docker.as_container(runner)
        host = runner if container is None else container.host
        stage = (
            NodeStatus.WAITING_FOR_NODE
            if self._config.provider.capabilities.shares_filesystem
            else NodeStatus.WAITING_FOR_SSH
        )
        # A ready node keeps its tag until something changes: an unchanged one costs no write.
        was_ready = node.status is NodeStatus.READY
        try:
            self._enter(node, stage, tag=not was_ready)
            self._check(host.run("true", timeout_s=30), node, stage, "the node does not answer")
            outcome = Outcome.UNCHANGED
            # A new container holds nothing of the old one's setup: set it up again.
            fresh = container is not None and container.needs_create()
            alive = not fresh and detached.is_alive(runner, node.id)
            if fresh or node.tags.get(Tag.RUNTIME_HASH) != spec.runtime_hash:
                stage = NodeStatus.SYNCING_FILES
                self._enter(node, stage)
                self._sync_files(host, container)
                if container is not None and fresh:
                    # Ray in an old container first stops as on a restart: removing the
                    # container alone may not stop processes that share this machine's PIDs.
                    detached.stop(runner, node.id)
                    container.create()  # after the sync: its mounts' sources exist now
                sync_wheelhouse(runner, self._config)
                stage = NodeStatus.SETTING_UP
                self._enter(node, stage)
                self._set_up(runner, host, node)
                self._record(node, stage, {Tag.RUNTIME_HASH: spec.runtime_hash})
                outcome = Outcome.SET_UP
            else:
                # Set up already, but jobs install from the wheelhouse too (`submit --pip`):
                # what was added to it since reaches the node (reported only if it fails).
                stage = NodeStatus.SYNCING_FILES
                sync_wheelhouse(runner, self._config)
            changed = not alive or node.tags.get(Tag.START_HASH) != spec.start_hash
            if is_head:
                head, restart = node, False
                if not changed:
                    gate.open(node, restarted=False)
            else:
                head, restart = gate.wait(node, stage)
            if restart or changed:
                stage = NodeStatus.STARTING_RAY
                self._enter(node, stage)
                if alive:
                    grace = detached.ORPHAN_GRACE_S if restart else detached.STOP_GRACE_S
                    detached.stop(runner, node.id, grace_s=grace)
                started = self._start_ray(
                    runner, node, head, gate, access.ray_start_args, wait=wait
                )
                self._record(node, stage, {**started, Tag.START_HASH: spec.start_hash})
                outcome = Outcome.RESTARTED if alive else Outcome.STARTED
            elif wait and node.status is not NodeStatus.READY:
                # Resuming a bootstrap that stopped after Ray started (a killed monitor).
                self._wait_registered(runner, node, head.gcs_address)
            if wait:  # without waiting, the node stays starting-ray until it is seen in Ray
                unchanged = was_ready and outcome is Outcome.UNCHANGED
                self._enter(node, NodeStatus.READY, tag=not unchanged)
            return outcome
        except (
            NodeUnreachable,
            AuthError,
            TransferError,
            docker.ContainerError,
            RuntimeInstallError,  # the wheelhouse went since the config was read
        ) as exc:
            failure = BootstrapError(node.id, stage.value, str(exc))
            # Tags kept elsewhere (an SSH pool on the head) can still say so; a local node's
            # tags went with its home.
            with contextlib.suppress(RayctlError):
                self._mark_failed(node, failure)
            raise failure from None
        except BootstrapError as exc:
            self._mark_failed(node, exc)
            raise

    def _mark_failed(self, node: Node, failure: BootstrapError) -> None:
        tags = {Tag.STATUS: NodeStatus.FAILED.value, Tag.ERROR: failure.detail[-250:]}
        self._on_stage(node, StageChange(NodeStatus.FAILED, tags, failure.detail))

    def _enter(self, node: Node, stage: NodeStatus, *, tag: bool = True) -> None:
        tags = {Tag.STATUS: stage.value, Tag.ERROR: ""} if tag else {}
        self._on_stage(node, StageChange(stage, tags))

    def _record(self, node: Node, stage: NodeStatus, tags: dict[str, str]) -> None:
        """Tags that say a step is done, reported within the stage that did it."""
        self._on_stage(node, StageChange(stage, tags))

    @staticmethod
    def _check(result: CommandResult, node: Node, stage: NodeStatus, what: str) -> None:
        if not result.ok:
            raise BootstrapError(
                node.id, stage.value, f"{what} (exit {result.exit_code}):\n{result.tail}"
            )

    def _sync_files(self, host: CommandRunner, container: docker.DockerRunner | None) -> None:
        """File mounts go to the node's host; a container sees them through its mounts."""
        for remote, local in self._config.file_mounts.items():
            target = remote if container is None else container.spec.host_path(remote)
            if os.path.isdir(local):
                host.sync(
                    local,
                    target,
                    exclude=self._config.rsync_exclude,
                    filters=self._config.rsync_filter,
                )
            else:
                host.put(local, target)

    def _set_up(self, runner: CommandRunner, host: CommandRunner, node: Node) -> None:
        head = node.kind is NodeKind.HEAD
        recent: deque[str] = deque(maxlen=TAIL_LINES)  # across commands: causes come earlier
        with self._output_log(node) as log:

            def write(line: str) -> None:
                recent.append(line)
                log(line)

            def run_all(commands: list[str], *, on: CommandRunner, prefix: str = "") -> None:
                for command in commands:
                    write(f"$ {command}")
                    result = on.run(prefix + command, stream=write)
                    if not result.ok:
                        output = "\n".join(recent)
                        raise BootstrapError(
                            node.id,
                            NodeStatus.SETTING_UP.value,
                            f"`{command}` exited with {result.exit_code}:\n{output}",
                        )

            # Initialization commands may install what the runtime needs (python3-venv), so
            # they run, as in Ray, before it exists: on the host's own PATH (in docker mode, on
            # the host: they may install the container engine).
            run_all(self._config.initialization_commands, on=host)
            if not self._config.provider.capabilities.runtime_preinstalled:
                try:
                    ensure_runtime(runner, self._config, stream=write)
                except RuntimeInstallError as exc:
                    raise BootstrapError(node.id, NodeStatus.SETTING_UP.value, str(exc)) from None
            run_all(
                self._config.setup_commands_for(node.node_type, head=head),
                on=runner,
                prefix=f"{runtime_path_export(self._config)}; ",
            )

    @contextlib.contextmanager
    def _output_log(self, node: Node) -> Iterator[Callable[[str], None]]:
        """A line writer to the node's setup log (or to nowhere without a log dir)."""
        if self._log_dir is None:
            yield lambda _line: None
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_dir / f"{node.id}.log", "a", buffering=1) as f:
            yield lambda line: f.write(line + "\n")

    def _start_ray(
        self,
        runner: CommandRunner,
        node: Node,
        head: Node,
        gate: HeadGate,
        start_args: Callable[[Node], RayStart],
        *,
        wait: bool,
    ) -> dict[str, str]:
        """Start the node's Ray; the tags that start gave it (a head's GCS port)."""
        is_head = node.kind is NodeKind.HEAD
        start = start_args(node)
        custom = (
            self._config.head_start_ray_commands
            if is_head
            else self._config.worker_start_ray_commands
        )
        tags = dict(start.tags)
        if is_head:  # the provider may have chosen the GCS port just now, else the commands
            if Tag.GCS_PORT not in tags:
                tags[Tag.GCS_PORT] = str(start_commands.gcs_port(custom) or RAY_GCS_PORT)
            head = replace(node, tags={**node.tags, **tags})
        gcs_address = head.gcs_address
        args = [*ray_resource_args(self._config, node.node_type), *start.args]
        if custom:
            # Ray-style commands may leave Ray in the background; the tracker then stays the
            # slot's leader while it runs (see start_commands).
            commands = [
                *(start_commands.only_rayctl_autoscales(c) for c in custom),
                render("track_ray.sh.j2"),
            ]
        else:
            ray = str(Path(runtime_python(self._config)).parent / "ray")
            commands = [
                render(
                    "ray_start.j2", ray=ray, head=is_head, gcs_address=gcs_address, args=args
                ).strip()
            ]
        # Custom start commands get the token's path too: the exports come first.
        commands = [runtime_path_export(self._config), self._auth.shell_exports(), *commands]
        env = {
            "RAY_CLOUD_INSTANCE_ID": node.id,
            "RAY_NODE_TYPE_NAME": node.node_type,
            "RAYCTL_CLUSTER": self._config.cluster_name,
            "RAY_HEAD_IP": head.internal_ip,
            "RAYCTL_GCS_ADDRESS": gcs_address,
            "RAYCTL_RAY_START_ARGS": shlex.join(args),
            "RAY_USAGE_STATS_ENABLED": "0",
            # GCS then speaks the v2 autoscaler protocol: request_resources becomes a cluster
            # constraint that rayctl's monitor reads (Ray's own monitor is off: --no-monitor).
            "RAY_enable_autoscaler_v2": "1",
        }
        resources = self._config.available_node_types[node.node_type].resources
        if custom and resources:
            # Ray-style commands rarely pass the node type's resources; Ray takes them from
            # here over what it detects (as `ray up` passes them), so Ray and the autoscaler
            # agree on what a node holds.
            env["RAY_OVERRIDE_RESOURCES"] = json.dumps(dict(resources), sort_keys=True)
        if is_head:
            env["RAY_gcs_pull_resource_loads_period_milliseconds"] = str(
                demand_pull_period_ms(self._config.max_workers)
            )
        stage = NodeStatus.STARTING_RAY
        try:
            self._auth.put_token(runner)
        except TokenError as exc:
            raise BootstrapError(node.id, stage.value, str(exc)) from None
        self._check(
            detached.start(runner, node.id, commands, env), node, stage, "Ray did not start"
        )
        if wait:
            on_gcs = (lambda: gate.open(head, restarted=True)) if is_head else None
            self._wait_registered(runner, node, gcs_address, on_gcs=on_gcs)
        return tags

    def _wait_registered(
        self,
        runner: CommandRunner,
        node: Node,
        gcs_address: str,
        *,
        on_gcs: Callable[[], None] | None = None,
    ) -> None:
        """Until Ray's GCS lists this node alive; fail early if its process exits. `on_gcs`
        is called once, as soon as the GCS accepts connections."""
        token_file = self._auth.require_token()
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        next_probe = 0.0
        while time.monotonic() < deadline:
            if on_gcs is not None and gcs_listening(gcs_address):
                on_gcs()
                on_gcs = None
            try:
                if any(
                    r.instance_id == node.id and r.status != "DEAD"
                    for r in list_ray_nodes(gcs_address, token_file=token_file, timeout_s=5)
                ):
                    return
            except RayUnreachable:
                pass
            if time.monotonic() >= next_probe:
                if not detached.is_alive(runner, node.id):
                    tail = detached.output_tail(runner, node.id)
                    raise BootstrapError(node.id, "starting-ray", f"Ray exited:\n{tail}")
                next_probe = time.monotonic() + 1.0
            time.sleep(0.2)
        tail = detached.output_tail(runner, node.id)
        raise BootstrapError(
            node.id,
            "starting-ray",
            f"Ray did not join {gcs_address} within {NODE_START_TIMEOUT_S:g} s:\n{tail}",
        )
