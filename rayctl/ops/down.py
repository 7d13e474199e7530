"""`down`: remove every trace of a cluster. It rebuilds its view from the provider's tags,
so it is idempotent and undoes any failed `up`. With `force`, nodes that cannot be
terminated (and state that cannot be read) are forgotten instead, and reported as nodes
that may remain (like `sky down --purge`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.config.schema import ClusterConfig
from rayctl.errors import (
    AuthError,
    ProviderError,
    RayctlError,
    StateCorrupted,
    TerminationFailed,
)
from rayctl.ops import known
from rayctl.ops.head import stop_monitor
from rayctl.ops.lock import cluster_lock
from rayctl.paths import ray_token_file
from rayctl.providers.base import (
    Node,
    NodeKind,
    NodeProvider,
    Tag,
    removal_from_head,
    stopped_nodes,
)
from rayctl.providers.registry import make_provider
from rayctl.runtime.jobs import HeadJobs
from rayctl.runtime.runner import NodeUnreachable

# When `down` cannot reach the head to stop its monitor, the monitor dies with the head's
# instance; until then it may launch: list and terminate again this many times, so apart.
SWEEP_ROUNDS = 3
SWEEP_PAUSE_S = 2.0
# Ray stops a job's driver with SIGTERM, then SIGKILL after 3 s (RAY_JOB_STOP_WAIT_TIME_S).
JOB_STOP_TIMEOUT_S = 30.0
FORCE_HINT = (
    "run `rayctl down` again, or `rayctl down --force` to forget them (they may keep running; "
    "it lists them so you can remove them by hand)"
)

log = logging.getLogger(__name__)


class DownStage(StrEnum):
    """Where `down` is with one node, reported as it goes (the CLI's live view)."""

    STOPPING_AUTOSCALER = "stopping-autoscaler"  # the head's monitor
    STOPPING_JOBS = "stopping-jobs"  # on the head, through Ray
    TERMINATING = "terminating"
    TERMINATED = "terminated"  # and confirmed gone
    MAY_REMAIN = "may-remain"  # forgotten by --force without confirming it is gone
    KEPT = "kept"  # the head, with workers_only


DownCallback = Callable[[Node, DownStage], None]


@dataclass(frozen=True)
class Remaining:
    """A node `down --force` forgot without confirming it is gone."""

    id: str
    address: str
    why: str


@dataclass(frozen=True)
class DownReport:
    removed: list[Node]
    kept_head: bool
    may_remain: list[Remaining] = field(default_factory=list)
    cleanup_error: str | None = None  # with force: per-cluster resources left behind


def down(
    loaded: LoadedConfig,
    *,
    home: Path,
    workers_only: bool = False,
    force: bool = False,
    on_stage: DownCallback | None = None,
    by_monitor: bool = False,
) -> DownReport:
    """Terminate the cluster's nodes (all at once) and confirm none is left before
    forgetting the cluster, holding the cluster's lock. A head that cannot be reached (it
    never answered SSH, or this machine cannot reach it) does not stop `down`: its monitor
    goes with the head, and what it launched meanwhile is swept up after. `on_stage` hears
    where each node is (DownStage).

    `by_monitor`: the head's own monitor removes its idle cluster (autostop): it has stopped
    autoscaling and no job runs; the workers go first, then the head it runs on."""
    provider = make_provider(loaded.config, home=home)
    with cluster_lock(home, loaded.name, "down"):
        report = _Down(
            provider,
            loaded.config,
            home,
            workers_only=workers_only,
            force=force,
            on_stage=on_stage,
            by_monitor=by_monitor,
        ).run()
        if not workers_only and not report.may_remain:
            # Nothing uses the token any more; a new cluster of this name gets a new one.
            ray_token_file(home, loaded.name).unlink(missing_ok=True)
            # Before the lock's release removes the empty dir. A head's monitor has no record
            # to forget (the machine that ran `up` has it): it leaves none on its host.
            if not by_monitor or known.recorded(home, loaded.name) is not None:
                known.forget(home, loaded)
        return report


class _Down:
    def __init__(
        self,
        provider: NodeProvider,
        config: ClusterConfig,
        home: Path,
        *,
        workers_only: bool,
        force: bool,
        on_stage: DownCallback | None,
        by_monitor: bool = False,
    ) -> None:
        self.provider = provider
        self.on_stage = on_stage
        self.config = config
        self.home = home
        self.workers_only = workers_only
        self.force = force
        self.by_monitor = by_monitor
        self.forgotten: list[Remaining] = []

    def run(self) -> DownReport:
        provider = self.provider
        try:
            heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
        except StateCorrupted as exc:
            if not self.force:
                raise
            self._forget_state(exc)
            heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
        self._report(heads, DownStage.STOPPING_AUTOSCALER)
        try:
            if not self.by_monitor:
                stop_monitor(provider, heads)  # or it would replace the workers we remove
            monitor_stopped = True
        except (NodeUnreachable, AuthError) as exc:  # e.g. a machine without the head's key
            if self.workers_only:  # the head stays, and so would its monitor
                raise ProviderError(
                    f"cannot stop the autoscaler on the head ({exc}): it would replace the "
                    "workers; run `rayctl down` without --workers-only to remove everything"
                ) from None
            log.warning("cannot reach the head to stop its autoscaler (%s); terminating it", exc)
            monitor_stopped = False
        if monitor_stopped and not self.workers_only and not self.by_monitor:
            self._stop_jobs(heads)
        nodes = provider.list_nodes()
        if not self.workers_only and not self.by_monitor:
            nodes += stopped_nodes(provider)  # an autostopped cluster's machines go too
        targets = [n for n in nodes if not self.workers_only or n.kind is NodeKind.WORKER]
        if self.by_monitor:  # the head last: the monitor runs there
            self._terminate([n for n in targets if n.kind is NodeKind.WORKER])
            own_heads = [n for n in targets if n.kind is NodeKind.HEAD]
            remover = removal_from_head(provider)
            if remover is not None:  # it removes the head and the rest in its own order
                for head in own_heads:
                    remover.remove_from_head(head)
                return DownReport(removed=targets, kept_head=False)
            self._terminate(own_heads)
        else:
            self._terminate(targets)
        if not monitor_stopped:
            targets += self._sweep()
        forgotten = {r.id for r in self.forgotten}
        target_ids = {n.id for n in targets} - forgotten
        leaked = [n for n in provider.list_nodes() if n.id in target_ids]
        if leaked:
            if not self.force:
                raise ProviderError(
                    "these nodes are still there after termination: "
                    f"{', '.join(n.id for n in leaked)}; {FORCE_HINT}"
                )
            self._forget(leaked, {n.id: "still listed after termination" for n in leaked})
        cleanup_error = None
        if not self.workers_only:
            try:
                provider.cleanup()
            except ProviderError as exc:
                if not self.force:
                    raise
                cleanup_error = str(exc)
        forgotten = {r.id for r in self.forgotten}
        removed = [n for n in targets if n.id not in forgotten]
        self._report(removed, DownStage.TERMINATED)
        self._report([n for n in targets if n.id in forgotten], DownStage.MAY_REMAIN)
        if self.workers_only:
            self._report(heads, DownStage.KEPT)
        return DownReport(
            removed=removed,
            kept_head=self.workers_only,
            may_remain=self.forgotten,
            cleanup_error=cleanup_error,
        )

    def _stop_jobs(self, heads: list[Node]) -> None:
        """Stop the jobs still running, through Ray, and wait until their drivers are gone: a
        driver runs in a session of its own, and outlived its stopped Ray here (seen on the
        local provider)."""
        for head in heads:
            self._report([head], DownStage.STOPPING_JOBS)
            jobs = HeadJobs.of(self.config, head, self.provider.runner(head), self.home)
            try:
                jobs.stop_all(timeout_s=JOB_STOP_TIMEOUT_S)
            except RayctlError as exc:  # never blocks a teardown: the head goes anyway
                log.warning("could not stop the jobs on the head (%s); terminating it", exc)

    def _terminate(self, nodes: list[Node]) -> None:
        if not nodes:
            return
        self._report(nodes, DownStage.TERMINATING)
        try:
            self.provider.terminate_nodes([n.id for n in nodes])
        except TerminationFailed as exc:
            if not self.force:
                raise TerminationFailed(exc.failed, hint=FORCE_HINT) from None
            self._forget([n for n in nodes if n.id in exc.failed], exc.failed)
        except ProviderError as exc:  # says nothing of which: any of them may remain
            if not self.force:
                exc.args = (f"{exc}; {FORCE_HINT}",)
                raise
            self._forget(nodes, {n.id: str(exc) for n in nodes})

    def _report(self, nodes: list[Node], stage: DownStage) -> None:
        if self.on_stage is not None:
            for node in nodes:
                self.on_stage(node, stage)

    def _forget(self, nodes: list[Node], why: dict[str, str]) -> None:
        self.provider.forget_nodes([n.id for n in nodes])
        self.forgotten += [
            Remaining(n.id, n.external_ip or n.internal_ip, why.get(n.id, "")) for n in nodes
        ]

    def _forget_state(self, exc: StateCorrupted) -> None:
        why = f"recorded in the unreadable {exc.path} (copy: {exc.copy})"
        self.provider.forget_nodes([node_id for node_id, _ in exc.nodes])
        self.forgotten += [Remaining(i, address, why) for i, address in exc.nodes] or [
            Remaining("unknown", "", f"whatever was {why}")
        ]

    def _sweep(self) -> list[Node]:
        """Terminate what a monitor that could not be stopped launched before its head went
        (a bounded number of rounds); returns those nodes."""
        swept: list[Node] = []
        for _ in range(SWEEP_ROUNDS):
            time.sleep(SWEEP_PAUSE_S)
            forgotten = {r.id for r in self.forgotten}
            late = [n for n in self.provider.list_nodes() if n.id not in forgotten]
            self._terminate(late)
            swept += late
        return swept
