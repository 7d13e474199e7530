"""The embedded local provider: every node is a `ray start --block` process on this machine.

Each node has its own loopback address, its own home directory (what `~` means on the node),
its own Ray temp dir and its own ports, so several clusters run side by side. State lives in
`<rayctl home>/clusters/<name>/nodes.json`, replaced durably under a file lock.

A node's record goes last: its process is stopped, then its directories and address lease
are removed, then the record. Every step is idempotent, so a `down` that was interrupted
anywhere is finished by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from rayctl.config.schema import ClusterConfig
from rayctl.errors import StateCorrupted, TerminationFailed
from rayctl.paths import cluster_dir, keep_copy, write_atomic
from rayctl.providers.base import Node, NodeKind, NodeState, NodeStatus, RayStart, Tag
from rayctl.providers.local import loopback
from rayctl.runtime import detached, head_paths
from rayctl.runtime.runner import CommandRunner, LocalRunner, NodeUnreachable

DASHBOARD_PORT = 8265
# How long processes of a node whose home is gone get to exit on SIGTERM before SIGKILL.
ORPHAN_GRACE_S = 5.0


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
            text = json.dumps({k: r.model_dump() for k, r in records.items()}, indent=1)
            write_atomic(self._state_file, text)

    def _read(self) -> dict[str, _Record]:
        """The records; a file that does not parse or validate raises StateCorrupted (read
        as empty, it would leak the nodes it recorded)."""
        try:
            text = self._state_file.read_text()
        except FileNotFoundError:
            return {}
        raw: object = None
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError(f"a JSON {type(raw).__name__}, not an object of records")
            return {k: _Record.model_validate(v) for k, v in raw.items()}
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            why = str(exc).splitlines()[0]
            raise StateCorrupted(
                str(self._state_file), str(keep_copy(self._state_file)), why, _salvage(raw)
            ) from None

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
        failed: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
            for future in [pool.submit(self._stop_and_remove, r) for r in targets]:
                try:
                    future.result()
                except TerminationFailed as exc:
                    failed |= exc.failed
        # Only the records of nodes that are gone: the others stay for a later `down`.
        with self._locked() as current:
            for record in targets:
                if record.id not in failed:
                    current.pop(record.id, None)
        if failed:
            raise TerminationFailed(failed)

    def _stop_and_remove(self, record: _Record) -> None:
        """Stop the node's processes, then remove its directories and lease (not its record).
        Each step is a no-op when an interrupted run already did it. Raises TerminationFailed
        for this node when its processes could not be stopped (nothing is removed then)."""
        home = self.node_home(record.id)
        try:
            result = detached.stop(self.runner(self._node(record)), record.id)
            problem = None if result.ok else f"exit {result.exit_code}:\n{result.tail}"
        except NodeUnreachable:  # its home (and pid file) is gone: find its processes by env
            problem = _stop_orphans(record.id)
        if problem is not None:
            raise TerminationFailed({record.id: f"could not stop node {record.id}: {problem}"})
        shutil.rmtree(self._ray_temp_dir(record.id), ignore_errors=True)
        loopback.release(record.ip, home)
        shutil.rmtree(home, ignore_errors=True)

    def forget_nodes(self, ids: Sequence[str]) -> None:
        """Drop the records and address leases of `ids`, whose processes may still run
        (`down --force`); an unreadable state file is set aside (StateCorrupted kept a copy)."""
        try:
            self._read()
        except StateCorrupted:
            self._state_file.unlink(missing_ok=True)
        with self._locked() as records:
            for node_id in ids:
                record = records.pop(node_id, None)
                if record is not None:
                    loopback.release(record.ip, self.node_home(node_id))

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
            is_head = node.kind is NodeKind.HEAD
            # The head's dashboard prefers Ray's usual port on its own address.
            wanted = [("", 0), ("", 0), (record.ip, DASHBOARD_PORT)] if is_head else []
            agent_port, *head_ports = _free_ports([("", 0), *wanted])
            args = [
                f"--node-ip-address={record.ip}",
                f"--temp-dir={self._ray_temp_dir(node.id)}",
                f"--dashboard-agent-listen-port={agent_port}",
            ]
            if is_head:
                gcs, client, dashboard = head_ports
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
        self, config: ClusterConfig, head: Node, runner: CommandRunner
    ) -> tuple[ClusterConfig, dict[str, str]]:
        # The head is this machine: its monitor shares this rayctl home (the nodes' state).
        return config, {"RAYCTL_HOME": str(self._home)}

    def cleanup(self) -> None:
        """Once no node is recorded: remove this provider's own files (not other files in
        the cluster's dir, such as `up`/`down`'s lock or a corrupt state's copy), then the
        dir if nothing else is left."""
        if not self.state_dir.exists() or self._read():
            return
        shutil.rmtree(self.state_dir / "nodes", ignore_errors=True)
        for name in ("nodes.json", "nodes.json.tmp", "nodes.lock"):
            (self.state_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()


def _salvage(raw: object) -> list[tuple[str, str]]:
    """(id, address) of the records that can still be made out of a state that does not
    validate, so `down --force` can say what may remain."""
    if not isinstance(raw, dict):
        return []
    found = []
    for key, value in raw.items():
        ip = value.get("ip") if isinstance(value, dict) else None
        found.append((str(key), ip if isinstance(ip, str) else ""))
    return found


def marked_pids(variable: str, value: str) -> list[int]:
    """PIDs of this machine's processes whose environment has `variable=value`: rayctl marks
    what it starts (RAYCTL_PROC=<node id>, RAYCTL_CLUSTER=<name>) and Ray's own processes
    inherit the mark."""
    marker = f"{variable}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _stop_orphans(node_id: str) -> str | None:
    """Stop what still runs of a node whose home is gone: SIGTERM, then SIGKILL after a
    grace period. A problem as a message, else None."""
    for sig, wait_s in ((signal.SIGTERM, ORPHAN_GRACE_S), (signal.SIGKILL, 2.0)):
        pids = marked_pids("RAYCTL_PROC", node_id)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                return f"cannot signal its process {pid}: {exc}"
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = marked_pids("RAYCTL_PROC", node_id)
        if not pids:
            return None
    return f"its processes {pids} survived SIGKILL"


def _free_ports(wanted: Sequence[tuple[str, int]]) -> list[int]:
    """A TCP port nothing listens on now for each (host, preferred) of `wanted`: `preferred`
    if it is free on `host`, else any; all distinct. Each socket stays bound until every port
    is chosen: closed one by one, the kernel may hand out one port twice, and Ray refuses a
    start whose components share a port. Host "" checks every interface (Ray binds some of
    its servers to all of them)."""
    with contextlib.ExitStack() as held:
        ports = []
        for host, preferred in wanted:
            s = held.enter_context(socket.socket())
            try:
                s.bind((host, preferred))
            except OSError:
                s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports
