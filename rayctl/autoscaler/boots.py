"""How the autoscaler boots a worker: real bootstrap through the provider, fenced so that a
boot the reconciler cancelled (timed out, or the node was removed) touches the node no more:
every later command, file transfer or tag write of that boot is refused. (A command already
running when the boot is cancelled runs to its end; the node is terminated by PID anyway.)"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rayctl.config.schema import ClusterConfig
from rayctl.errors import BootstrapError
from rayctl.providers.base import Node, NodeProvider, RayStart, recording
from rayctl.runtime.bootstrap import Bootstrapper, HeadGate, StageChange
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import CommandRunner

log = logging.getLogger(__name__)


class BootCancelled(BootstrapError):
    """The reconciler cancelled this boot; it must not touch the node again."""


class _FencedRunner:
    """A runner whose every call first checks that the boot was not cancelled."""

    def __init__(self, inner: CommandRunner, node: Node, cancelled: threading.Event) -> None:
        self._inner = inner
        self._node = node
        self._cancelled = cancelled

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def fenced(*args: Any, **kwargs: Any) -> Any:
            fence(self._node, self._cancelled)
            return attribute(*args, **kwargs)

        return fenced


def fence(node: Node, cancelled: threading.Event) -> None:
    if cancelled.is_set():
        raise BootCancelled(node.id, "cancelled", "the autoscaler cancelled this boot")


class _FencedAccess:
    def __init__(self, provider: NodeProvider, cancelled: threading.Event) -> None:
        self._provider = provider
        self._cancelled = cancelled

    def runner(self, node: Node) -> CommandRunner:
        fence(node, self._cancelled)
        return _FencedRunner(self._provider.runner(node), node, self._cancelled)  # type: ignore[return-value]

    def ray_start_args(self, node: Node) -> RayStart:
        fence(node, self._cancelled)
        return self._provider.ray_start_args(node)


# Boots a worker: returns when its Ray runs, raises BootstrapError when it cannot; stops (and
# touches the node no more) once `cancelled` is set.
BootFn = Callable[[Node, Node, threading.Event], None]


def bootstrap_worker(config: ClusterConfig, provider: NodeProvider, auth: ClusterAuth) -> BootFn:
    """The reconciler's boot function for real nodes; `auth` as the head sees it (the token
    goes from there to each worker)."""

    def report(node: Node, change: StageChange) -> None:
        log.info("bootstrap", extra={"node_id": node.id, "stage": change.stage.value})

    def boot(node: Node, head: Node, cancelled: threading.Event) -> None:
        record = recording(provider, report)

        def on_stage(n: Node, change: StageChange) -> None:
            fence(n, cancelled)  # no tag write once cancelled
            record(n, change)

        bootstrapper = Bootstrapper(config, auth=auth, on_stage=on_stage)
        bootstrapper.bootstrap(node, _FencedAccess(provider, cancelled), HeadGate.of(head))

    return boot
