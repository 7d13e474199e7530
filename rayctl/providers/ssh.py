"""On-prem hosts over SSH: the head on head_ip, workers taken from worker_ips on demand.

A host is "created" by allocating it from the pool and "terminated" by stopping the Ray this
cluster started on it (by PID, nothing else on the host is touched) and giving it back. The
pool's state lives on the head (ssh_pool.py), so the laptop and the head's monitor share it;
a node's id is its host's address.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rayctl.config.schema import ClusterConfig, SSHProviderConfig
from rayctl.errors import CapacityError, ProviderError
from rayctl.providers import head_access, ssh_pool
from rayctl.providers.base import Node, NodeKind, NodeState, Tag
from rayctl.runtime import detached
from rayctl.runtime.runner import NodeUnreachable
from rayctl.runtime.ssh_runner import SSHRunner

_POOL_SCRIPT = Path(ssh_pool.__file__).read_text()
STOP_THREADS = 32
# How long to keep trying a host that refuses or does not answer before calling it down.
CONNECT_ATTEMPTS_S = float(os.environ.get("RAYCTL_SSH_CONNECT_ATTEMPTS_S", "60"))


class SSHProvider:
    def __init__(self, config: ClusterConfig, *, home: Path) -> None:
        assert isinstance(config.provider, SSHProviderConfig)
        assert config.auth.ssh_user and config.auth.ssh_private_key  # the loader checks both
        self.cluster_name = config.cluster_name
        self._provider = config.provider
        self._user = config.auth.ssh_user
        self._key = Path(config.auth.ssh_private_key)
        self._proxy_command = config.auth.ssh_proxy_command
        self._state_dir = home / "clusters" / config.cluster_name
        self._runners: dict[str, SSHRunner] = {}
        self._lock = threading.Lock()

    @property
    def known_hosts(self) -> Path:
        """The hosts' keys, pinned per cluster on first use."""
        return self._state_dir / "known_hosts"

    def bootstrap(self) -> None:
        mode = stat.S_IMODE(self._key.stat().st_mode)
        if mode & 0o077:
            raise ProviderError(
                f"the private key {self._key} is readable by others (mode {mode:o}); "
                f"run `chmod 600 {self._key}`"
            )
        self._state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _runner_for(self, host: str) -> SSHRunner:
        with self._lock:
            runner = self._runners.get(host)
            if runner is None:
                runner = self._runners[host] = SSHRunner(
                    host,
                    node_id=host,
                    user=self._user,
                    key_path=self._key,
                    known_hosts=self.known_hosts,
                    proxy_command=self._proxy_command,
                    connect_attempts_s=CONNECT_ATTEMPTS_S,
                )
            return runner

    def _pool(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        command = shlex.join(
            # -I -S: no site packages or user environment, only the standard library (fast)
            [
                "python3",
                "-I",
                "-S",
                "-c",
                _POOL_SCRIPT,
                self.cluster_name,
                op,
                json.dumps(args or {}),
            ]
        )
        result = self._runner_for(self._provider.head_ip).run(command, timeout_s=60)
        if not result.ok:
            raise ProviderError(
                f"could not {op} hosts in the pool kept on the head {self._provider.head_ip} "
                f"(exit {result.exit_code}; it needs python3 on the PATH):\n{result.tail}"
            )
        return json.loads(result.tail.splitlines()[-1])

    def _node(self, host: str, record: Mapping[str, Any]) -> Node:
        kind = NodeKind(record["kind"])
        external = self._provider.external_head_ip if kind is NodeKind.HEAD else None
        return Node(
            id=host,
            node_type=record["node_type"],
            kind=kind,
            state=NodeState.RUNNING,  # a held host is up; whether Ray runs is Ray's to say
            internal_ip=host,
            external_ip=external,
            tags=dict(record["tags"]),
            launched_at=record["launched_at"],
        )

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        kind = NodeKind(tags[Tag.KIND])
        hosts = [self._provider.head_ip] if kind is NodeKind.HEAD else self._provider.worker_ips
        record = {
            "node_type": node_type,
            "kind": kind.value,
            "tags": {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type},
        }
        taken = self._pool("allocate", {"hosts": hosts, "count": count, "record": record})
        if not taken:
            raise CapacityError(
                f"every host in worker_ips ({len(hosts)}) is in use; "
                "add hosts to provider.worker_ips or lower max_workers"
            )
        return [self._node(host, held) for host, held in taken.items()]

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(host, record) for host, record in self._pool("list").items()]
        return [n for n in nodes if all(n.tags.get(k) == v for k, v in tag_filters.items())]

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        held = {n.id: n for n in self.list_nodes()}
        targets = [held[i] for i in ids if i in held]
        if not targets:
            return
        with ThreadPoolExecutor(min(STOP_THREADS, len(targets))) as pool:
            stops = pool.map(self._stop_ray, targets)
            problems = dict(zip((n.id for n in targets), stops, strict=True))
        stopped = [node_id for node_id, problem in problems.items() if problem is None]
        if stopped:
            self._pool("release", {"hosts": stopped})
        failures = [problem for problem in problems.values() if problem is not None]
        if failures:
            raise ProviderError("\n".join(failures))

    def _stop_ray(self, node: Node) -> str | None:
        """Stop what this cluster started on the host; a problem as a message, else None."""
        try:
            result = detached.stop(self._runner_for(node.internal_ip), node.id)
        except NodeUnreachable as exc:
            if Tag.START_HASH not in node.tags:
                return None  # Ray was never started there: nothing to stop
            return f"could not stop Ray on {node.id}: {exc}"
        if not result.ok:
            return f"could not stop Ray on {node.id} (exit {result.exit_code}):\n{result.tail}"
        return None

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        self._pool("set-tags", {"host": node_id, "tags": dict(tags)})

    def runner(self, node: Node) -> SSHRunner:
        return self._runner_for(node.internal_ip)

    def ray_start_args(self, node: Node) -> list[str]:
        return [f"--node-ip-address={node.internal_ip}"]

    def prepare_head(
        self, config: ClusterConfig, head: Node
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The monitor on the head reaches workers with this cluster's key and pinned host
        keys, copied into the head's rayctl home (where its own provider looks, mode 0600);
        file mounts are synced to workers from their copies on the head."""
        runner = self.runner(head)
        remote = f"{head_access.REMOTE_HOME}/clusters/{self.cluster_name}"
        head_access.copy_secrets(
            runner,
            {str(self._key): f"{remote}/ssh_key", str(self.known_hosts): f"{remote}/known_hosts"},
        )
        auth = config.auth.model_copy(update={"ssh_private_key": f"~/{remote}/ssh_key"})
        return head_access.head_config(config, runner, auth=auth), {}

    def cleanup(self) -> None:
        self._pool("drop")
