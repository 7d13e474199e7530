"""`up`: bring a cluster to what its config says. It rebuilds its view from the provider's
tags on every call, so it is idempotent, and a failed `up` is always undone by `down`.

The head's autoscaler is stopped while `up` works (nothing launches behind its back) and
started with the new config only when every node came up. A failed `up` (a node that
failed, a provider error, Ctrl-C) restarts the autoscaler that ran before it, with that
autoscaler's own config, when the head's Ray still runs: the new config is not trusted, as
a typo in its setup commands would make every worker the autoscaler launches fail the same
way, forever. Otherwise the autoscaler stays off and the failure says so, with the command
that starts it (AutoscalerState, autoscaler_note).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.config.schema import ClusterConfig
from rayctl.errors import BootstrapError, ConfigError, ProviderError, RayctlError
from rayctl.ops import known
from rayctl.ops.head import (
    AutoscalerState,
    autoscaler_note,
    find_head,
    monitor_running,
    restart_monitor,
    start_monitor,
    stop_monitor,
)
from rayctl.ops.lock import cluster_lock
from rayctl.paths import log_dir
from rayctl.providers.base import (
    Node,
    NodeKind,
    NodeProvider,
    Tag,
    node_stopper,
    recording,
    simulated_ray,
)
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

log = logging.getLogger(__name__)


@dataclass
class UpReport:
    head: Node
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # node id -> what was done
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # ids of nodes terminated for a new launch
    failed: list[BootstrapError] = field(default_factory=list)
    autoscaler: AutoscalerState = AutoscalerState.OFF

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
    known.record(home, loaded)  # first: a failed `up` is found by name and removed by `down`
    provider.bootstrap()
    _resume(config, provider)
    heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    # The autoscaler to restore if this `up` fails.
    previous = next((h for h in heads if monitor_running(provider, h)), None)
    stop_monitor(provider, heads)
    try:
        report = _converge(
            loaded, provider, heads, home=home, on_stage=on_stage, confirm=confirm, wait=wait
        )
        if report.failed or report.head.id not in report.outcomes:
            report.autoscaler = _restore_autoscaler(provider, previous)
        else:
            if report.head.tags.get(Tag.AUTOSTOPPED):  # it runs again
                provider.set_tags(report.head.id, {Tag.AUTOSTOPPED: ""})
            start_monitor(loaded, provider, report.head)
            report.autoscaler = AutoscalerState.STARTED
        return report
    except BaseException as exc:  # Ctrl-C too: the cluster must not be left without one
        restored = _restore_autoscaler(provider, previous)
        if previous is not None or _has_head(provider):
            exc.add_note(autoscaler_note(loaded, restored))
        raise


def _resume(config: ClusterConfig, provider: NodeProvider) -> None:
    """A cluster whose machines stopped (autostop without `down`) starts again: its head and
    the stopped workers min_workers asks for (the others stay stopped: launches reuse them
    with cache_stopped_nodes, `down` removes them). Bootstrap then starts Ray on them."""
    stopper = node_stopper(provider)
    if stopper is None:
        return
    chosen = to_resume(config, stopper.stopped_nodes(), provider.list_nodes())
    if chosen:
        log.info("starting the stopped nodes %s", ", ".join(chosen))
        stopper.start_nodes(chosen)


def to_resume(config: ClusterConfig, stopped: list[Node], running: list[Node]) -> list[str]:
    """Which of a stopped cluster's nodes to start: a head (when none runs), and the stopped
    workers of each worker type of the config (with its launch hash) that its min_workers
    needs besides the `running` ones."""
    heads = sorted(n.id for n in stopped if n.kind is NodeKind.HEAD)
    if not heads or any(n.kind is NodeKind.HEAD for n in running):
        return []
    types = config.worker_types()
    hashes = {name: NodeSpec.of(config, name, NodeKind.WORKER).launch_hash for name in types}

    def counts_for(node: Node) -> str | None:
        """The worker type whose min_workers the node counts for, if any."""
        current = node.kind is NodeKind.WORKER and node.node_type in hashes
        if current and node.tags.get(Tag.LAUNCH_HASH) == hashes[node.node_type]:
            return node.node_type
        return None

    have = Counter(counts_for(n) for n in running)
    chosen = heads[:1]
    for node in sorted(stopped, key=lambda n: n.id):
        type_name = counts_for(node)
        if type_name is not None and have[type_name] < types[type_name].min_workers:
            chosen.append(node.id)
            have[type_name] += 1
    return chosen


def _restore_autoscaler(provider: NodeProvider, previous: Node | None) -> AutoscalerState:
    """After a failed `up`: the autoscaler that ran before it, started again if its head's
    Ray runs (nothing else may stop the failure from being reported)."""
    if previous is None:
        return AutoscalerState.OFF
    try:
        if restart_monitor(provider, previous):
            return AutoscalerState.RESTORED
    except Exception as exc:
        log.warning("could not restart the autoscaler on the head: %s", exc)
    return AutoscalerState.OFF


def _has_head(provider: NodeProvider) -> bool:
    try:
        return bool(provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value}))
    except Exception:  # the provider failing is what is being reported
        return False


def _converge(
    loaded: LoadedConfig,
    provider: NodeProvider,
    heads: list[Node],
    *,
    home: Path,
    on_stage: StageCallback,
    confirm: Callable[[str], bool],
    wait: bool,
) -> UpReport:
    """Head and min_workers as the config says, bootstrapped; the autoscaler is the caller's."""
    config = loaded.config
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
    return report
