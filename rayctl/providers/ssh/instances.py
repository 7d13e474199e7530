"""On-prem hosts over SSH: the head on head_ip, workers taken from worker_ips on demand.

A host is "created" by allocating it from the pool and "terminated" by stopping the Ray this
cluster started on it (by PID, nothing else on the host is touched) and giving it back. The
pool's state lives on the head (pool.py), so the laptop and the head's monitor share it;
a node's id is its host's address. A cluster that takes a host claims it on the host itself
(claims.py), so no other cluster listing the same hosts takes it meanwhile, and letting
it go removes what the cluster kept there (its secrets, its processes' scripts).
"""

from __future__ import annotations

import getpass
import json
import posixpath
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rayctl.config.schema import ClusterConfig
from rayctl.errors import AuthError, CapacityError, ProviderError, StateCorrupted, TerminationFailed
from rayctl.providers.base import Node, NodeKind, NodeState, RayStart, Tag, tagged
from rayctl.providers.ssh import claims, pool
from rayctl.providers.ssh.config import SSHProviderConfig
from rayctl.providers.ssh_access import SSHAccess, connect_attempts_s
from rayctl.runtime import detached, head_paths
from rayctl.runtime.runner import CommandRunner, NodeUnreachable
from rayctl.runtime.ssh_runner import SSHRunner

_POOL_SCRIPT = Path(pool.__file__).read_text()
_CLAIMS_SCRIPT = Path(claims.__file__).read_text()
STOP_THREADS = 32
CONNECT_ATTEMPTS_S = 60.0  # on-prem hosts are up: a minute of retries is plenty
# Autostop with `down`: how long the head's last step gives the monitor, sent SIGTERM, to
# return from `down` and exit before it is killed.
MONITOR_EXIT_S = 60.0


class SSHProvider:
    def __init__(self, config: ClusterConfig, *, home: Path) -> None:
        assert isinstance(config.provider, SSHProviderConfig)
        if config.provider.head_ip is None:  # checked: only with a coordinator_address
            raise ProviderError(
                "provider.coordinator_address is not supported yet: list the hosts as "
                "provider.head_ip and provider.worker_ips instead"
            )
        self.cluster_name = config.cluster_name
        self._provider = config.provider
        key = config.auth.ssh_private_key
        self._access = SSHAccess(
            config,
            home=home,
            key_path=Path(key) if key else None,
            attempts_s=connect_attempts_s(CONNECT_ATTEMPTS_S),
        )

    @property
    def known_hosts(self) -> Path:
        return self._access.known_hosts

    def bootstrap(self) -> None:
        """Check the key, and claim the head before anything is touched: a head that
        another cluster holds stops `up` here."""
        self._access.check_key()
        self._claim(self._provider.head_ip)

    def _runner_for(self, host: str) -> SSHRunner:
        return self._access.runner(host, host)  # a node's id is its host's address

    @property
    def _owner(self) -> dict[str, str]:
        """Who claims hosts: the cluster is its name and its head (two configs that only
        share a name are two clusters)."""
        return {"cluster": self.cluster_name, "head": self._provider.head_ip}

    def _claim(self, host: str) -> None:
        """Claim `host` for this cluster; CapacityError naming the holder if another
        cluster holds it (the host is busy, as with no capacity: retried, backed off)."""
        about = {
            "machine": socket.gethostname(),
            "user": getpass.getuser(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        args = {"address": host, "owner": self._owner, "about": about}
        command = _script(_CLAIMS_SCRIPT, head_paths.CLAIMS_DIR, "claim", args)
        result = self._runner_for(host).run(command, timeout_s=60)
        if result.exit_code == claims.HELD_EXIT:
            held = json.loads(result.tail.splitlines()[-1])
            owner, about = held["owner"], held["about"]
            where = ", ".join(f"{k} {v}" for k, v in {"head": owner["head"], **about}.items())
            claim = posixpath.join("~", head_paths.CLAIMS_DIR, host)
            raise CapacityError(
                f"host {host} is held by cluster {owner['cluster']} ({where}); run "
                f"`rayctl down` for it, or, if that cluster is gone, delete {claim} on {host}"
            )
        if not result.ok:
            raise ProviderError(
                f"could not claim host {host} (exit {result.exit_code}; it needs python3 on "
                f"the PATH):\n{result.tail}"
            )

    def _release_command(self, host: str) -> str:
        """The command, run on the host, that lets it go: its claim, and what the cluster
        kept there."""
        head = host == self._provider.head_ip
        remove = head_paths.released_with_host(self.cluster_name, host, head=head)
        args = {"address": host, "owner": self._owner, "remove": remove}
        return _script(_CLAIMS_SCRIPT, head_paths.CLAIMS_DIR, "release", args)

    def _release(self, host: str) -> None:
        result = self._runner_for(host).run(self._release_command(host), timeout_s=60)
        if not result.ok:
            raise ProviderError(f"could not release host {host}:\n{result.tail}")

    def _pool(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        command = _script(_POOL_SCRIPT, head_paths.pool_dir(self.cluster_name), op, args or {})
        head = self._provider.head_ip
        result = self._runner_for(head).run(command, timeout_s=60)
        if result.exit_code == pool.CORRUPT_EXIT:
            details = json.loads(result.tail.splitlines()[-1])
            # Which hosts it held is unknown: any of the config's may run this cluster's Ray.
            hosts = [head, *self._provider.worker_ips]
            raise StateCorrupted(
                f"{details['corrupt']} on the head {head}",
                details["copy"],
                details["why"],
                [(host, host) for host in hosts],
            )
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
        with ThreadPoolExecutor(min(STOP_THREADS, len(taken))) as threads:
            refusals = dict(zip(taken, threads.map(self._try_claim, taken), strict=True))
        held = {host: why for host, why in refusals.items() if why is not None}
        if held:  # back to the pool, at the end of its line
            self._pool("release", {"hosts": list(held)})
            if len(held) == len(taken):
                raise CapacityError("; ".join(held.values()))
        return [self._node(host, taken[host]) for host in taken if host not in held]

    def _try_claim(self, host: str) -> str | None:
        """Claim a host just taken from the pool; why not, if another cluster holds it. A
        host that does not answer stays taken: its bootstrap says it cannot be reached."""
        try:
            self._claim(host)
        except CapacityError as exc:
            return str(exc)
        except (NodeUnreachable, AuthError):
            pass
        return None

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        nodes = [self._node(host, record) for host, record in self._pool("list").items()]
        return tagged(nodes, tag_filters)

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
        failed = {node_id: problem for node_id, problem in problems.items() if problem is not None}
        if failed:
            raise TerminationFailed(failed)

    def _stop_ray(self, node: Node) -> str | None:
        """Stop what this cluster started on the host; a problem as a message, else None."""
        try:
            result = detached.stop(self._runner_for(node.internal_ip), node.id)
            if result.ok:
                self._release(node.id)
        except NodeUnreachable as exc:
            if Tag.START_HASH not in node.tags:
                return None  # Ray was never started there: nothing to stop
            return f"could not stop Ray on {node.id}: {exc}"
        except ProviderError as exc:
            return str(exc)
        if not result.ok:
            return f"could not stop Ray on {node.id} (exit {result.exit_code}):\n{result.tail}"
        return None

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Give the hosts back to the pool though their Ray may still run (`down --force`)."""
        self._pool("forget", {"hosts": list(ids)})

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        self._pool("set-tags", {"host": node_id, "tags": dict(tags)})

    def runner(self, node: Node) -> SSHRunner:
        return self._runner_for(node.internal_ip)

    def ray_start_args(self, node: Node) -> RayStart:
        return self._access.ray_start_args(node)

    def prepare_head(
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        """The monitor on the head reaches workers with this cluster's key and pinned host
        keys (see SSHAccess.prepare_head)."""
        return self._access.prepare_head(config, runner), {}

    def cleanup(self) -> None:
        """Drop the pool, then let the head go (also when `up` failed before the head was
        in the pool: bootstrap claimed it first)."""
        self._pool("drop")
        self._release(self._provider.head_ip)

    def remove_from_head(self, head: Node) -> None:
        """Autostop with `down`, run by the head's monitor once the workers are released:
        stop the head's Ray and drop the pool; then a last step detached on the head stops
        the monitor (this process, which heeds SIGTERM once it has returned from here) and
        only then releases the head with the cluster's secrets and the slots, the monitor's
        own among them. So nothing of the cluster outlives the monitor there, and no other
        cluster takes the host while it still runs. What a head stopped midway leaves (a
        claim, the pool), `rayctl down` removes."""
        held = [n.id for n in self.list_nodes() if n.id != head.id]
        if held:
            raise ProviderError(f"cluster {self.cluster_name} still holds {', '.join(held)}")
        runner = self._runner_for(head.id)
        stopped = detached.stop(runner, head.id)
        if not stopped.ok:
            raise ProviderError(
                f"could not stop Ray on {head.id} (exit {stopped.exit_code}):\n{stopped.tail}"
            )
        self._pool("release", {"hosts": [head.id]})
        self._pool("drop")
        last = detached.stop_then(
            runner, head_paths.MONITOR_SLOT, self._release_command(head.id), grace_s=MONITOR_EXIT_S
        )
        if not last.ok:
            raise ProviderError(f"could not let the head {head.id} go:\n{last.tail}")


def _script(source: str, *args: str | Mapping[str, Any]) -> str:
    """A command running one of the provider's stdlib-only scripts with the host's python3
    (-I -S: no site packages or user environment, only the standard library: fast); a
    mapping argument goes as JSON."""
    argv = [a if isinstance(a, str) else json.dumps(a) for a in args]
    return shlex.join(["python3", "-I", "-S", "-c", source, *argv])
