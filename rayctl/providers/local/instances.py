"""The embedded local provider: every node is a `ray start --block` process on this machine.

Each node has its own loopback address, its own home directory (what `~` means on the node),
its own Ray temp dir and its own ports, so several clusters run side by side. State lives in
`<rayctl home>/clusters/<name>/nodes.json`, written atomically under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from rayctl.config.schema import ClusterConfig
from rayctl.paths import cluster_dir
from rayctl.providers.base import Node, NodeKind, NodeState, NodeStatus, RayStart, Tag
from rayctl.providers.local import loopback
from rayctl.runtime import detached, head_paths
from rayctl.runtime.runner import LocalRunner

DASHBOARD_PORT = 8265


class _Record(BaseModel):
    id: str
    node_type: str
    ip: str
    tags: dict[str, str]
    launched_at: float


class LocalProvider:
    def __init__(self, config: ClusterConfig, *, home: Path) -> None:
        self.cluster_name = config.cluster_name
        self._home = home
        self.state_dir = cluster_dir(home, self.cluster_name)
        self._state_file = self.state_dir / "nodes.json"

    # -- state -------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[dict[str, _Record]]:
        """Read-modify-write of the node records under the cluster's lock."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.state_dir / "nodes.lock", timeout=60):
            records = self._read()
            yield records
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: r.model_dump() for k, r in records.items()}, indent=1))
            os.replace(tmp, self._state_file)

    def _read(self) -> dict[str, _Record]:
        try:
            raw = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return {}
        return {k: _Record.model_validate(v) for k, v in raw.items()}

    def node_home(self, node_id: str) -> Path:
        return self.state_dir / "nodes" / node_id

    def _ray_temp_dir(self, node_id: str) -> Path:
        # Ray's socket paths must stay under 108 bytes, so the temp dir is short.
        digest = hashlib.sha1(str(self.node_home(node_id)).encode()).hexdigest()[:12]
        return Path("/tmp") / f"rayctl-{digest}"

    def _pid_file(self, node_id: str) -> Path:
        return self.node_home(node_id) / head_paths.home_relative("procs", node_id, "pid")

    def _state(self, record: _Record) -> NodeState:
        try:
            pid = int(self._pid_file(record.id).read_text())
        except (FileNotFoundError, ValueError):
            started = record.tags.get(Tag.STATUS) in (NodeStatus.READY, NodeStatus.STARTING_RAY)
            return NodeState.STOPPED if started else NodeState.PENDING
        marker = f"RAYCTL_PROC={record.id}".encode()
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return NodeState.STOPPED
        return NodeState.RUNNING if marker in environ else NodeState.STOPPED

    def _node(self, record: _Record) -> Node:
        return Node(
            id=record.id,
            node_type=record.node_type,
            kind=NodeKind(record.tags[Tag.KIND]),
            state=self._state(record),
            internal_ip=record.ip,
            external_ip=None,
            tags=dict(record.tags),
            launched_at=record.launched_at,
        )

    # -- NodeProvider ------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Nothing to prepare: the state directory appears with the first node."""

    def create_nodes(self, node_type: str, count: int, tags: Mapping[str, str]) -> list[Node]:
        kind = NodeKind(tags[Tag.KIND])
        created = []
        with self._locked() as records:
            for _ in range(count):
                node_id = f"{kind.value}-{secrets.token_hex(4)}"
                home = self.node_home(node_id)
                home.mkdir(parents=True)
                ip = loopback.lease(home)
                node_tags = {**tags, Tag.CLUSTER: self.cluster_name, Tag.NODE_TYPE: node_type}
                record = _Record(
                    id=node_id,
                    node_type=node_type,
                    ip=ip,
                    tags=node_tags,
                    launched_at=time.time(),
                )
                records[node_id] = record
                created.append(self._node(record))
        return created

    def list_nodes(self, **tag_filters: str) -> list[Node]:
        return [
            self._node(r)
            for r in self._read().values()
            if all(r.tags.get(k) == v for k, v in tag_filters.items())
        ]

    def terminate_nodes(self, ids: Sequence[str]) -> None:
        records = self._read()
        targets = [records[i] for i in ids if i in records]
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
            list(pool.map(self._stop_and_remove, targets))
        with self._locked() as current:
            for record in targets:
                current.pop(record.id, None)

    def _stop_and_remove(self, record: _Record) -> None:
        home = self.node_home(record.id)
        result = detached.stop(self.runner(self._node(record)), record.id)
        if not result.ok:
            raise RuntimeError(f"could not stop node {record.id}: {result.tail}")
        shutil.rmtree(self._ray_temp_dir(record.id), ignore_errors=True)
        loopback.release(record.ip, home)
        shutil.rmtree(home, ignore_errors=True)

    def set_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        with self._locked() as records:
            records[node_id].tags.update(tags)

    def runner(self, node: Node) -> LocalRunner:
        return LocalRunner(self.node_home(node.id))

    def ray_start_args(self, node: Node) -> RayStart:
        """Fresh ports on every start: a restarted node's old ports may still be held by the
        kernel (TIME_WAIT) after its Ray died. The head's new GCS port goes into its tags."""
        with self._locked() as records:
            record = records[node.id]
            tags: dict[str, str] = {}
            agent_port = _free_port()
            args = [
                f"--node-ip-address={record.ip}",
                f"--temp-dir={self._ray_temp_dir(node.id)}",
                f"--dashboard-agent-listen-port={agent_port}",
            ]
            if node.kind is NodeKind.HEAD:
                gcs, client, dashboard = (
                    _free_port(),
                    _free_port(),
                    _free_port(record.ip, DASHBOARD_PORT),
                )
                tags = {Tag.GCS_PORT: str(gcs), Tag.DASHBOARD_PORT: str(dashboard)}
                record.tags.update(tags)
                args += [
                    f"--port={gcs}",
                    f"--ray-client-server-port={client}",
                    f"--dashboard-host={record.ip}",
                    f"--dashboard-port={dashboard}",
                ]
        return RayStart(args, tags)

    def prepare_head(
        self, config: ClusterConfig, head: Node
    ) -> tuple[ClusterConfig, dict[str, str]]:
        # The head is this machine: its monitor shares this rayctl home (the nodes' state).
        return config, {"RAYCTL_HOME": str(self._home)}

    def cleanup(self) -> None:
        if self.state_dir.exists() and not self._read():
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _free_port(host: str = "", preferred: int = 0) -> int:
    """A TCP port nothing listens on now: `preferred` if it is free on `host`, else any.
    Ray binds some of its servers to every interface, so the default checks them all."""
    with socket.socket() as s:
        try:
            s.bind((host, preferred))
        except OSError:
            s.bind((host, 0))
        return s.getsockname()[1]
