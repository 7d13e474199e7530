"""What autostop does to an idle cluster, run by the head's monitor (cli.monitor hands it to
the autoscaler, which cannot import orchestration): with `down`, remove the cluster as
`rayctl down` does; without, stop Ray on every node and keep the nodes, marked on the head
(Tag.AUTOSTOPPED) so that `status` says so and a later `up` starts them again. Where nodes
are machines that stop (providers.base.StopsNodes: cloud instances), the machines stop too,
the head's own last. Only providers whose nodes stay resumable that way
(Capabilities.stops_nodes) take autostop without `down`: config validation refuses it on
the others."""

from __future__ import annotations

import time
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.errors import ProviderError
from rayctl.ops.down import down
from rayctl.ops.lock import cluster_lock
from rayctl.providers.base import NodeKind, Tag, node_stopper
from rayctl.providers.registry import make_provider
from rayctl.runtime import detached


def autostop(loaded: LoadedConfig, *, home: Path) -> None:
    settings = loaded.config.rayctl.autostop
    assert settings is not None, "the monitor runs autostop only when the config asks for it"
    if settings.down:
        down(loaded, home=home, by_monitor=True)
        return
    provider = make_provider(loaded.config, home=home)
    with cluster_lock(home, loaded.name, "autostop"):
        nodes = provider.list_nodes()
        # Workers first: a worker whose head is gone waits for it on SIGTERM.
        for node in sorted(nodes, key=lambda n: n.kind is NodeKind.HEAD):
            result = detached.stop(provider.runner(node), node.id)
            if not result.ok:
                raise ProviderError(f"could not stop Ray on {node.id}:\n{result.tail}")
        heads = [n.id for n in nodes if n.kind is NodeKind.HEAD]
        for head in heads:
            provider.set_tags(head, {Tag.AUTOSTOPPED: f"{time.time():.0f}"})
        stopper = node_stopper(provider)
        if stopper is not None:  # the head's machine last: this runs there
            stopper.stop_nodes([n.id for n in nodes if n.kind is NodeKind.WORKER])
            stopper.stop_nodes(heads)
