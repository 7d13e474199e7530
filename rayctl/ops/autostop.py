"""What autostop does to an idle cluster, run by the head's monitor (cli.monitor hands it to
the autoscaler, which cannot import orchestration): with `down`, remove the cluster as
`rayctl down` does; without, stop Ray on every node and keep the nodes, marked on the head
(Tag.AUTOSTOPPED) so that `status` says so and a later `up` starts them again. Only
providers whose nodes stay resumable that way (Capabilities.stops_nodes) take autostop
without `down`: config validation refuses it on the others."""

from __future__ import annotations

import time
from pathlib import Path

from rayctl.config.loader import LoadedConfig
from rayctl.errors import ProviderError
from rayctl.ops.down import down
from rayctl.ops.lock import cluster_lock
from rayctl.providers.base import NodeKind, Tag
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
        for node in nodes:
            if node.kind is NodeKind.HEAD:
                provider.set_tags(node.id, {Tag.AUTOSTOPPED: f"{time.time():.0f}"})
