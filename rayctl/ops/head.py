"""The head of a cluster, as orchestration needs it: finding it, and starting and stopping
the autoscaler (`rayctl monitor`) that runs there as a detached process."""

from __future__ import annotations

import tempfile

import yaml

from rayctl.config.loader import LoadedConfig
from rayctl.errors import ClusterNotFound, ProviderError
from rayctl.providers.base import Node, NodeKind, NodeProvider, Tag
from rayctl.runtime import detached, head_paths
from rayctl.runtime.install import runtime_python
from rayctl.templates import shell_path


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
        detached.stop(provider.runner(head), head_paths.MONITOR_SLOT, grace_s=5)


def start_monitor(loaded: LoadedConfig, provider: NodeProvider, head: Node) -> None:
    """Start the autoscaler on the head with the validated config (file mounts resolved)."""
    runner = provider.runner(head)
    head_config, env = provider.prepare_head(loaded.config, head)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as snapshot:
        yaml.safe_dump(head_config.model_dump(mode="json"), snapshot, sort_keys=False)
        snapshot.flush()
        runner.put(snapshot.name, head_paths.MONITOR_CONFIG)
    python = shell_path(runtime_python(loaded.config))
    result = detached.start(
        runner,
        head_paths.MONITOR_SLOT,
        [f"exec {python} -m rayctl monitor {head_paths.MONITOR_CONFIG}"],
        env={**env, "RAYCTL_CLUSTER": loaded.name},
    )
    if not result.ok:
        raise ProviderError(f"could not start the autoscaler on the head:\n{result.tail}")


def monitor_running(provider: NodeProvider, head: Node) -> bool:
    return detached.is_alive(provider.runner(head), head_paths.MONITOR_SLOT)
