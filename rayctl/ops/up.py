"""`up`: bring a cluster to what its config says. It rebuilds its view from the provider's
tags on every call, so it is idempotent, and a failed `up` is always undone by `down`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.errors import BootstrapError, ConfigError, ProviderError, RayctlError
from rayctl.ops.head import find_head, start_monitor, stop_monitor
from rayctl.ops.lock import cluster_lock
from rayctl.paths import log_dir
from rayctl.providers.base import Node, NodeKind, Tag, recording, simulated_ray
from rayctl.providers.registry import make_provider
from rayctl.runtime.bootstrap import (
    Bootstrapper,
    HeadFailed,
    HeadGate,
    NodeSpec,
    Outcome,
    StageCallback,
)
from rayctl.runtime.ray_auth import ClusterAuth

BOOTSTRAP_THREADS = 16


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


def up(
    loaded: LoadedConfig,
    *,
    home: Path,
    on_stage: StageCallback,
    confirm: Callable[[str], bool],
    wait: bool = True,
) -> UpReport:
    """Create or update the head and each type's min_workers, bootstrapping in parallel,
    holding the cluster's lock (no other `up` or `down` of it from this machine meanwhile).
    Parts of the config rayctl accepts but does not implement yet stop it before any work."""
    if loaded.unsupported:
        raise ConfigError(list(loaded.unsupported))
    with cluster_lock(home, loaded.name, "up"):
        return _up(loaded, home=home, on_stage=on_stage, confirm=confirm, wait=wait)


def _up(
    loaded: LoadedConfig,
    *,
    home: Path,
    on_stage: StageCallback,
    confirm: Callable[[str], bool],
    wait: bool,
) -> UpReport:
    config = loaded.config
    provider = make_provider(loaded.config, home=home)
    if simulated_ray(provider) is not None:
        raise RayctlError(
            f"the {config.provider.type} provider simulates nodes and Ray for the autoscaler's "
            "tests and benchmarks (rayctl validate and plan take its configs); it has no "
            "nodes to bring up"
        )
    provider.bootstrap()
    heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    # Restarted at the end with this config; meanwhile nothing launches behind our back.
    stop_monitor(provider, heads)
    request_id = secrets.token_hex(4)
    auth = ClusterAuth.local(config, home=home)
    auth.ensure_token()
    bootstrapper = Bootstrapper(
        config,
        auth=auth,
        on_stage=recording(provider, on_stage),
        log_dir=log_dir(home, config.cluster_name),
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
        futures = {head.id: pool.submit(bootstrapper.bootstrap, head, provider, gate)}
        futures |= {
            w.id: pool.submit(bootstrapper.bootstrap, w, provider, gate, wait=wait) for w in workers
        }
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
