"""Docker mode over any provider: the same nodes, reached inside their containers.

`make_provider` wraps a provider in ContainerNodes when the config has docker mode. Its
runners are DockerRunners (so bootstrap, exec, attach, submit and the monitor all work in
the containers), and it removes a node's container before the provider terminates the node
(a pool host or a local node outlives its container otherwise).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from rayctl.config.schema import ClusterConfig
from rayctl.errors import RayctlError
from rayctl.providers.base import Node, NodeProvider, RayStart
from rayctl.runtime import detached, head_paths
from rayctl.runtime.docker import ContainerSpec, DockerRunner
from rayctl.runtime.runner import CommandRunner, put_private


def uses_docker(config: ClusterConfig) -> bool:
    return any(config.docker_for(name) is not None for name in config.available_node_types)


class ContainerNodes:
    """A NodeProvider whose nodes run their Ray in containers (see module doc)."""

    def __init__(self, inner: NodeProvider, config: ClusterConfig) -> None:
        self.inner = inner
        self.cluster_name = inner.cluster_name
        self._config = config

    def __getattr__(self, name: str) -> object:  # what a provider adds beyond the protocol
        return getattr(self.inner, name)

    def runner(self, node: Node) -> CommandRunner:
        host = self.inner.runner(node)
        spec = ContainerSpec.of(self._config, node)
        return host if spec is None else DockerRunner(host, spec)

    def monitor_runner(self, node: Node) -> CommandRunner:
        """Where the head's autoscaler runs: in its container, except on nodes that are this
        machine (it works on this machine's rayctl home and starts containers here)."""
        if self._config.provider.capabilities.shares_filesystem:
            return self.inner.runner(node)
        return self.runner(node)

    def _remove_container(self, node: Node) -> None:
        spec = ContainerSpec.of(self._config, node)
        if spec is not None:
            # A host that cannot be reached is for the provider to deal with.
            with contextlib.suppress(RayctlError):
                runner = DockerRunner(self.inner.runner(node), spec)
                # Ray stops as on a restart (drained), before its container goes.
                detached.stop(runner, node.id)
                runner.remove()

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        wanted = set(ids)
        nodes = [n for n in self.inner.list_nodes() if n.id in wanted]
        if nodes:
            with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
                list(pool.map(self._remove_container, nodes))
        self.inner.terminate_nodes(ids)

    # -- the rest of the protocol, as the provider does it ------------------------------

    def bootstrap(self) -> None:
        self.inner.bootstrap()

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        return self.inner.create_nodes(node_type, count, tags)

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        return self.inner.list_nodes(**tag_filters)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        self.inner.forget_nodes(ids)

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        self.inner.set_tags(node_id, tags)

    def ray_start_args(self, node: Node) -> RayStart:
        return self.inner.ray_start_args(node)

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """As the provider does, and the registry password goes where the head's autoscaler
        runs, with the cluster's other secrets (its nodes log in too)."""
        config, env = self.inner.prepare_head(config, head, runner)
        login = config.rayctl.registry_login
        if login is None or self._config.provider.capabilities.shares_filesystem:
            return config, env
        on_head = posixpath.join(head_paths.cluster_secrets(self.cluster_name), "registry_password")
        put_private(runner, {login.password_file: on_head})
        login = login.model_copy(update={"password_file": f"~/{on_head}"})
        rayctl = config.rayctl.model_copy(update={"registry_login": login})
        return config.model_copy(update={"rayctl": rayctl}), env

    def cleanup(self) -> None:
        self.inner.cleanup()


def monitor_runner(provider: NodeProvider, head: Node) -> CommandRunner:
    """The runner the head's autoscaler is started, probed and stopped with."""
    if isinstance(provider, ContainerNodes):
        return provider.monitor_runner(head)
    return provider.runner(head)
