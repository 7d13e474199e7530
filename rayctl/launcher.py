"""`up` and `down`: bring a cluster to what its config says, or remove every trace of it.

Both rebuild their view from the provider's tags on every call, so they are idempotent and a
failed `up` is always undone by `down`.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rayctl.autoscaler.monitor import CONFIG_PATH, MONITOR_SLOT
from rayctl.config.loader import LoadedConfig
from rayctl.errors import AuthError, BootstrapError, ClusterNotFound, ProviderError
from rayctl.providers import Node, NodeKind, NodeProvider, Tag, make_provider
from rayctl.runtime import detached
from rayctl.runtime.bootstrap import (
    Bootstrapper,
    HeadFailed,
    HeadGate,
    NodeSpec,
    Outcome,
    StageCallback,
    runtime_python,
)
from rayctl.runtime.runner import NodeUnreachable
from rayctl.templates import shell_path

BOOTSTRAP_THREADS = 16
# When `down` cannot reach the head to stop its monitor, the monitor dies with the head's
# instance; until then it may launch: list and terminate again this many times, so apart.
SWEEP_ROUNDS = 3
SWEEP_PAUSE_S = 2.0

log = logging.getLogger(__name__)


@dataclass
class UpReport:
    head: Node
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # node id -> what was done
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # ids of nodes terminated for a new launch
    failed: list[BootstrapError] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.replaced
            or self.failed
            or any(o is not Outcome.UNCHANGED for o in self.outcomes.values())
        )


def log_dir(home: Path, cluster_name: str) -> Path:
    return home / "logs" / cluster_name


def find_head(provider: NodeProvider) -> Node:
    heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    if not heads:
        raise ClusterNotFound(
            f"cluster '{provider.cluster_name}' has no head node; start it with `rayctl up`"
        )
    return heads[0]


def stop_monitor(provider: NodeProvider, heads: list[Node] | None = None) -> None:
    """Stop the autoscaler on the head (if any), so nothing launches behind our back."""
    if heads is None:
        heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    for head in heads:
        detached.stop(provider.runner(head), MONITOR_SLOT, grace_s=5)


def start_monitor(loaded: LoadedConfig, provider: NodeProvider, head: Node) -> None:
    """Start the autoscaler on the head with the validated config (file mounts resolved)."""
    runner = provider.runner(head)
    head_config, env = provider.prepare_head(loaded.config, head)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as snapshot:
        yaml.safe_dump(head_config.model_dump(mode="json"), snapshot, sort_keys=False)
        snapshot.flush()
        runner.put(snapshot.name, CONFIG_PATH)
    python = shell_path(runtime_python(loaded.config))
    result = detached.start(
        runner,
        MONITOR_SLOT,
        [f"exec {python} -m rayctl monitor {CONFIG_PATH}"],
        env={**env, "RAYCTL_CLUSTER": loaded.name},
    )
    if not result.ok:
        raise ProviderError(f"could not start the autoscaler on the head:\n{result.tail}")


def up(
    loaded: LoadedConfig,
    *,
    home: Path,
    on_stage: StageCallback,
    confirm: Callable[[str], bool],
    wait: bool = True,
) -> UpReport:
    """Create or update the head and each type's min_workers, bootstrapping in parallel."""
    config = loaded.config
    provider = make_provider(loaded.config, home=home)
    provider.bootstrap()
    heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    # Restarted at the end with this config; meanwhile nothing launches behind our back.
    stop_monitor(provider, heads)
    request_id = secrets.token_hex(4)
    bootstrapper = Bootstrapper(
        config, provider, on_stage=on_stage, log_dir=log_dir(home, config.cluster_name)
    )
    replaced: list[str] = []

    head_spec = NodeSpec.of(config, config.head_node_type, NodeKind.HEAD)
    stale = [
        h
        for h in heads
        if h.tags.get(Tag.LAUNCH_HASH) != head_spec.launch_hash
        or h.node_type != config.head_node_type
    ]
    if stale:
        if not confirm(
            "The head node's type or node_config changed: replace the head "
            "(and restart every worker)?"
        ):
            raise ProviderError("left the cluster as it is")
        # Workers belong to the old head's Ray cluster; they go with it.
        everything = [n.id for n in provider.list_nodes()]
        provider.terminate_nodes(everything)
        replaced += everything
        heads = []
    created: list[str] = []
    if heads:
        head = heads[0]
    else:
        (head,) = provider.create_nodes(config.head_node_type, 1, head_spec.launch_tags(request_id))
        created.append(head.id)
    report = UpReport(head=head, created=created, replaced=replaced)

    listed = provider.list_nodes(**{Tag.KIND: NodeKind.WORKER.value})
    workers: list[Node] = []
    for type_name, node_type in config.worker_types().items():
        spec = NodeSpec.of(config, type_name, NodeKind.WORKER)
        existing = [n for n in listed if n.node_type == type_name]
        outdated = [n.id for n in existing if n.tags.get(Tag.LAUNCH_HASH) != spec.launch_hash]
        if outdated:
            provider.terminate_nodes(outdated)
            report.replaced += outdated
        kept = [n for n in existing if n.id not in outdated]
        shortfall = node_type.min_workers - len(kept)
        new = (
            provider.create_nodes(type_name, shortfall, spec.launch_tags(request_id))
            if shortfall > 0
            else []
        )
        report.created += [n.id for n in new]
        workers += kept + new
    # Workers of types no longer in the config are not the config's: remove them.
    orphans = [n.id for n in listed if n.node_type not in config.worker_types()]
    if orphans:
        provider.terminate_nodes(orphans)
        report.replaced += orphans

    # The head and the workers bootstrap at once; workers start Ray when the head's GCS
    # answers (and restart it if the head restarted: they belonged to its old Ray).
    gate = HeadGate()
    with ThreadPoolExecutor(
        max_workers=min(BOOTSTRAP_THREADS, 1 + len(workers)), thread_name_prefix="bootstrap"
    ) as pool:
        futures = {head.id: pool.submit(bootstrapper.bootstrap, head, gate)}
        futures |= {w.id: pool.submit(bootstrapper.bootstrap, w, gate, wait=wait) for w in workers}
        for node_id, future in futures.items():
            try:
                report.outcomes[node_id] = future.result()
            except BootstrapError as exc:
                report.failed.append(exc)
    if head.id not in report.outcomes:
        # Workers that only waited for the failed head are not failures of their own.
        report.failed = [f for f in report.failed if not isinstance(f, HeadFailed)]
        return report
    if report.outcomes[head.id] is not Outcome.UNCHANGED:
        head = find_head(provider)  # with the tags its start gave it (GCS port)
    report.head = head
    start_monitor(loaded, provider, head)
    return report


@dataclass(frozen=True)
class DownReport:
    removed: list[Node]
    kept_head: bool


def down(loaded: LoadedConfig, *, home: Path, workers_only: bool = False) -> DownReport:
    """Terminate the cluster's nodes (all at once) and confirm none is left before
    forgetting the cluster. A head that cannot be reached (it never answered SSH, or this
    machine cannot reach it) does not stop `down`: its monitor goes with the head, and what
    it launched meanwhile is swept up after."""
    provider = make_provider(loaded.config, home=home)
    try:
        stop_monitor(provider)  # or it would replace the workers we remove
        monitor_stopped = True
    except (NodeUnreachable, AuthError) as exc:  # e.g. a machine without the head's key
        if workers_only:  # the head stays, and so would its monitor
            raise ProviderError(
                f"cannot stop the autoscaler on the head ({exc}): it would replace the "
                "workers; run `rayctl down` without --workers-only to remove everything"
            ) from None
        log.warning("cannot reach the head to stop its autoscaler (%s); terminating it", exc)
        monitor_stopped = False
    nodes = provider.list_nodes()
    targets = [n for n in nodes if not workers_only or n.kind is NodeKind.WORKER]
    if targets:
        provider.terminate_nodes([n.id for n in targets])
    if not monitor_stopped:
        targets += _sweep(provider)
    target_ids = {n.id for n in targets}
    leaked = [n.id for n in provider.list_nodes() if n.id in target_ids]
    if leaked:
        raise ProviderError(
            f"these nodes are still there after termination: {', '.join(leaked)}; "
            "run `rayctl down` again"
        )
    if not workers_only:
        provider.cleanup()
    return DownReport(removed=targets, kept_head=workers_only)


def _sweep(provider: NodeProvider) -> list[Node]:
    """Terminate what a monitor that could not be stopped launched before its head went
    (a bounded number of rounds); returns those nodes."""
    swept: list[Node] = []
    for _ in range(SWEEP_ROUNDS):
        time.sleep(SWEEP_PAUSE_S)
        late = provider.list_nodes()
        if late:
            provider.terminate_nodes([n.id for n in late])
            swept += late
    return swept
