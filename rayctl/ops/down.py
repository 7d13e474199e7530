"""`down`: remove every trace of a cluster. It rebuilds its view from the provider's tags,
so it is idempotent and undoes any failed `up`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.errors import AuthError, ProviderError
from rayctl.ops.head import stop_monitor
from rayctl.providers.base import Node, NodeKind, NodeProvider
from rayctl.providers.registry import make_provider
from rayctl.runtime.runner import NodeUnreachable

# When `down` cannot reach the head to stop its monitor, the monitor dies with the head's
# instance; until then it may launch: list and terminate again this many times, so apart.
SWEEP_ROUNDS = 3
SWEEP_PAUSE_S = 2.0

log = logging.getLogger(__name__)


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
