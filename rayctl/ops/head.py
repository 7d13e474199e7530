"""The head of a cluster, as orchestration needs it: finding it, and starting and stopping
the autoscaler (`rayctl monitor`) that runs there as a detached process."""

from __future__ import annotations

import shlex
import tempfile
from enum import StrEnum

import yaml

from rayctl.config.loader import LoadedConfig
from rayctl.errors import ClusterNotFound, ProviderError
from rayctl.providers.base import Node, NodeKind, NodeProvider, Tag
from rayctl.providers.docker import monitor_runner
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
        detached.stop(monitor_runner(provider, head), head_paths.MONITOR_SLOT, grace_s=5)


def start_monitor(loaded: LoadedConfig, provider: NodeProvider, head: Node) -> None:
    """Start the autoscaler on the head with the validated config (file mounts resolved)."""
    runner = monitor_runner(provider, head)
    head_config, env = provider.prepare_head(loaded.config, head, runner)
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
    return detached.is_alive(monitor_runner(provider, head), head_paths.MONITOR_SLOT)


def restart_monitor(provider: NodeProvider, head: Node) -> bool:
    """Start the head's autoscaler again as it last ran (its start script, environment and
    config stay on the head), if the head's Ray runs; returns whether it runs now."""
    if not detached.is_alive(provider.runner(head), head.id):  # the head's Ray: none to scale
        return False
    return detached.restart(monitor_runner(provider, head), head_paths.MONITOR_SLOT).ok


class AutoscalerState(StrEnum):
    """The head's autoscaler after an `up` (which stops it while it works)."""

    STARTED = "started"  # with the config just given: every node came up
    RESTORED = "restored"  # that `up` failed: the autoscaler that ran before it runs again
    OFF = "off"  # not running: nothing adds or replaces workers (autoscaler_off_hint)


def up_command(loaded: LoadedConfig) -> str:
    return f"rayctl up {shlex.quote(str(loaded.path))} -n {shlex.quote(loaded.name)}"


def autoscaler_off_hint(loaded: LoadedConfig) -> str:
    return (
        "autoscaler: off: nothing adds, replaces or removes workers; "
        f"`{up_command(loaded)}` starts it again"
    )


def stopped_autoscaler_hint(loaded: LoadedConfig, provider: NodeProvider) -> str | None:
    """autoscaler_off_hint if the cluster has a head whose autoscaler is not running."""
    heads = provider.list_nodes(**{Tag.KIND: NodeKind.HEAD.value})
    if heads and not monitor_running(provider, heads[0]):
        return autoscaler_off_hint(loaded)
    return None


def autoscaler_note(loaded: LoadedConfig, state: AutoscalerState) -> str:
    """What a failed `up` says of the autoscaler it left."""
    if state is AutoscalerState.RESTORED:
        return (
            "autoscaler: restored: the autoscaler that ran before this `up` runs again, with "
            "its own config (the workers it launches are set up as before this `up`)"
        )
    return autoscaler_off_hint(loaded) + " once it succeeds"
