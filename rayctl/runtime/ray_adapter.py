"""The one place that talks to Ray's internals (pinned Ray version, see pyproject.toml)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rayctl.errors import RayctlError


class RayUnreachable(RayctlError):
    """Ray's GCS on the head did not answer."""


@dataclass(frozen=True)
class RayNode:
    instance_id: str  # the provider's node id (RAY_CLOUD_INSTANCE_ID at `ray start`)
    node_type: str
    ip: str
    status: str  # Ray's view: RUNNING, IDLE or DEAD
    idle_s: float
    total: dict[str, float]
    used: dict[str, float]
    ray_node_id: str = ""  # Ray's own node id (hex), for draining

    @property
    def alive(self) -> bool:
        return self.status != "DEAD"


Bundle = dict[str, float]


@dataclass(frozen=True)
class ClusterSnapshot:
    """Ray's nodes and everything waiting for resources, from one GCS call."""

    nodes: list[RayNode]
    demands: list[tuple[Bundle, int]] = field(default_factory=list)  # task/actor shapes
    placement_groups: list[tuple[str, list[Bundle]]] = field(default_factory=list)
    constraints: list[tuple[Bundle, int]] = field(default_factory=list)  # request_resources


# Ray reads its authentication mode and token per process (RayConfig and its token loader,
# both cached), not per client: each call below points them at its cluster's token first.
_auth_lock = threading.Lock()
_auth_in_use: list[Path | None] = []  # the token file the process uses now, once set


def _authenticate(token_file: Path | None) -> None:
    """Make this process's Ray clients present the token in `token_file` (None: none).
    RAY_AUTH_TOKEN is dropped: it would take precedence over the file."""
    with _auth_lock:
        if _auth_in_use == [token_file]:
            return
        from ray._raylet import AuthenticationTokenLoader, Config

        os.environ.pop("RAY_AUTH_TOKEN", None)
        if token_file is None:
            os.environ["RAY_AUTH_MODE"] = "disabled"
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file)
        Config.initialize("")  # re-reads RAY_AUTH_MODE
        AuthenticationTokenLoader.instance().reset_cache()
        _auth_in_use[:] = [token_file]


def _check_listening(gcs_address: str, timeout_s: float) -> None:
    host, port = gcs_address.rsplit(":", 1)
    # Ray's GCS client waits ~40 s for an address nobody listens on, whatever the timeout.
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout_s, 2)).close()
    except OSError as exc:
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None


def gcs_listening(gcs_address: str) -> bool:
    """Whether Ray's GCS accepts connections (workers can start joining it)."""
    try:
        _check_listening(gcs_address, 1)
    except RayUnreachable:
        return False
    return True


def cluster_snapshot(
    gcs_address: str, *, token_file: Path | None, timeout_s: int = 5
) -> ClusterSnapshot:
    """`token_file`: the cluster's Ray token here (None: the cluster runs without)."""
    _check_listening(gcs_address, timeout_s)
    from ray.autoscaler.v2.sdk import get_cluster_status

    _authenticate(token_file)
    try:
        status = get_cluster_status(gcs_address, timeout=timeout_s)
    except Exception as exc:  # GCS client errors have no common public base class
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None
    nodes = []
    for info in [*status.active_nodes, *status.idle_nodes, *status.failed_nodes]:
        usage = info.resource_usage
        nodes.append(
            RayNode(
                instance_id=info.instance_id or "",
                node_type=info.ray_node_type_name or "",
                ip=info.ip_address,
                status=str(info.node_status),
                idle_s=(usage.idle_time_ms or 0) / 1000 if usage else 0.0,
                total={u.resource_name: u.total for u in usage.usage} if usage else {},
                used={u.resource_name: u.used for u in usage.usage} if usage else {},
                ray_node_id=info.node_id or "",
            )
        )
    demand = status.resource_demands
    return ClusterSnapshot(
        nodes=nodes,
        demands=[
            (dict(r.bundle), r.count)
            for d in demand.ray_task_actor_demand
            for r in d.bundles_by_count
        ],
        placement_groups=[
            (
                pg.strategy or "PACK",
                [dict(r.bundle) for r in pg.bundles_by_count for _ in range(r.count)],
            )
            for pg in demand.placement_group_demand
        ],
        constraints=[
            (dict(r.bundle), r.count)
            for c in demand.cluster_constraint_demand
            for r in c.bundles_by_count
        ],
    )


def list_ray_nodes(
    gcs_address: str, *, token_file: Path | None, timeout_s: int = 5
) -> list[RayNode]:
    """Every node GCS knows, alive or dead (no ray.init)."""
    return cluster_snapshot(gcs_address, token_file=token_file, timeout_s=timeout_s).nodes


def drain_idle_node(
    gcs_address: str, ray_node_id: str, message: str, *, token_file: Path | None
) -> tuple[bool, str]:
    """Ask GCS to drain an idle node before it is terminated. GCS refuses (False, why) if the
    node became busy meanwhile; then it must not be terminated."""
    _check_listening(gcs_address, 5)
    from ray._raylet import GcsClient
    from ray.core.generated.autoscaler_pb2 import DrainNodeReason

    _authenticate(token_file)
    accepted, rejection = GcsClient(gcs_address).drain_node(
        node_id=ray_node_id,
        reason=DrainNodeReason.DRAIN_NODE_REASON_IDLE_TERMINATION,
        reason_message=message,
        deadline_timestamp_ms=0,
    )
    return bool(accepted), str(rejection or "")


@dataclass(frozen=True)
class RayActivity:
    """What runs on a cluster besides tasks and actors (which show as busy nodes)."""

    jobs: list[str]  # Ray Jobs not finished (pending or running), by submission id
    drivers: int  # drivers connected now (a job's, or a script's own `ray.init`)


# Ray keeps each Ray Job's record in the GCS's key-value store (JobInfoStorageClient), and
# its own drivers (the dashboard's) in namespaces with this prefix.
_JOB_INFO_PREFIX = b"_ray_internal_job_info_"
_JOB_NAMESPACE = b"job"
_INTERNAL_NAMESPACE = "_ray_internal"


def ray_activity(gcs_address: str, *, token_file: Path | None) -> RayActivity:
    """Ray Jobs not finished and drivers connected, from the GCS (no dashboard needed). A job
    waiting for its runtime environment has no driver yet but counts."""
    _check_listening(gcs_address, 5)
    import json

    from ray._raylet import GcsClient

    _authenticate(token_file)
    try:
        client = GcsClient(gcs_address)
        keys = client.internal_kv_keys(_JOB_INFO_PREFIX, namespace=_JOB_NAMESPACE)
        records = client.internal_kv_multi_get(keys, namespace=_JOB_NAMESPACE) if keys else {}
        drivers = client.get_all_job_info(
            skip_submission_job_info_field=True, skip_is_running_tasks_field=True
        )
    except Exception as exc:  # GCS client errors have no common public base class
        raise RayUnreachable(f"Ray at {gcs_address} did not answer: {exc}") from None
    jobs = []
    for key, value in records.items():
        if json.loads(value).get("status") not in JOB_STATES_TERMINAL:
            jobs.append(key[len(_JOB_INFO_PREFIX) :].decode())
    connected = [
        d
        for d in drivers.values()
        if not d.is_dead and not d.config.ray_namespace.startswith(_INTERNAL_NAMESPACE)
    ]
    return RayActivity(jobs=sorted(jobs), drivers=len(connected))


def dashboard_address(gcs_address: str, *, wait_s: float = 30.0) -> str:
    """`HOST:PORT` of the head's dashboard, as it registered itself in the GCS (so any
    `--dashboard-host`/`--dashboard-port` is found). Called on the head, with the cluster's Ray
    authentication in the environment; the dashboard starts after the GCS: wait a while."""
    _check_listening(gcs_address, 5)
    from ray._private import ray_constants
    from ray._raylet import GcsClient

    client = GcsClient(address=gcs_address)
    deadline = time.monotonic() + wait_s
    while True:
        value = client.internal_kv_get(
            ray_constants.DASHBOARD_ADDRESS.encode(), ray_constants.KV_NAMESPACE_DASHBOARD
        )
        if value:
            return value.decode()
        if time.monotonic() > deadline:
            raise RayctlError(
                f"the head's dashboard has not registered in Ray's GCS after {wait_s:g} s; "
                "is it running? (`rayctl exec CONFIG ray status`; its log is "
                "dashboard.log in Ray's session logs on the head)"
            )
        time.sleep(0.5)


# Ray Jobs (the head's dashboard runs the JobManager; each job's driver runs under a job
# supervisor actor, so it outlives the client that submitted it). These run on the head, with
# the cluster's Ray authentication in the environment (runtime.jobs puts it there).

JOB_STATES_TERMINAL = ("STOPPED", "SUCCEEDED", "FAILED")
DASHBOARD_WAIT_S = 30.0


class JobRecord(BaseModel):
    """One Ray job as rayctl shows it. Times are Unix seconds; `exit_code` is the driver's,
    None when it never ended by itself (stopped, or failed to start)."""

    job_id: str
    status: str  # Ray's JobStatus: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    start_time: float | None
    end_time: float | None
    entrypoint: str
    exit_code: int | None
    message: str

    @property
    def terminal(self) -> bool:
        return self.status in JOB_STATES_TERMINAL


class JobUnknown(RayctlError):
    """The cluster's Ray has no job of that id."""

    exit_code = 4


class RayJobs:
    """The head's Ray Jobs API. The dashboard's address comes from the GCS, so a head started
    with any `--dashboard-host`/`--dashboard-port` is found."""

    def __init__(self, gcs_address: str) -> None:
        _check_listening(gcs_address, 5)
        import logging

        from ray.job_submission import JobSubmissionClient

        # Ray's client modules log their progress (uploads, closing) at INFO through the
        # handler of Ray's root logger: not the job's output.
        for handler in logging.getLogger("ray").handlers:
            handler.setLevel(logging.WARNING)
        for variable in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):  # they would override ours
            os.environ.pop(variable, None)
        # The dashboard starts after the GCS (and after `up` returns): give it a while.
        deadline = time.monotonic() + DASHBOARD_WAIT_S
        while True:
            try:
                self._client = JobSubmissionClient(gcs_address)
                return
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def submit(self, job_id: str, entrypoint: str, *, runtime_env: dict[str, Any]) -> None:
        """Ray packages the runtime env's `working_dir`: the job's cwd is Ray's copy."""
        self._client.submit_job(
            entrypoint=entrypoint, submission_id=job_id, runtime_env=runtime_env
        )

    def record(self, job_id: str) -> JobRecord:
        try:
            return _record(self._client.get_job_info(job_id))
        except RuntimeError as exc:  # Ray's client: any non-200 answer; 404 for an unknown id
            if "status code 404" in str(exc):
                raise JobUnknown(f"no job {job_id} on this cluster") from None
            raise

    def list(self) -> list[JobRecord]:
        """Jobs submitted through Ray Jobs (not the drivers they start), oldest first."""
        jobs = [_record(d) for d in self._client.list_jobs() if d.submission_id]
        return sorted(jobs, key=lambda j: j.start_time or 0)

    def stop(self, job_ids: list[str], *, timeout_s: float) -> list[JobRecord]:
        """Ask Ray to stop the jobs and wait until Ray says each is terminal: Ray's supervisor
        marks a stopped job STOPPED only once its driver's processes are gone (SIGTERM, then
        SIGKILL after RAY_JOB_STOP_WAIT_TIME_S), so a terminal job has no driver left."""
        records = {job_id: self.record(job_id) for job_id in job_ids}  # JobUnknown first
        for job_id, record in records.items():
            if not record.terminal:
                self._client.stop_job(job_id)
        deadline = time.monotonic() + timeout_s
        while running := [r for r in records.values() if not r.terminal]:
            if time.monotonic() > deadline:
                raise RayctlError(
                    f"Ray still reports {', '.join(f'{r.job_id} {r.status}' for r in running)} "
                    f"{timeout_s:g} s after it was asked to stop; see `rayctl jobs` and run "
                    "`rayctl stop` again"
                )
            time.sleep(0.2)
            records.update({r.job_id: self.record(r.job_id) for r in running})
        return list(records.values())

    def follow_logs(self, job_id: str, *, poll_s: float = 0.25) -> Iterator[str]:
        """The job's output as Ray stores it, chunk by chunk, until the job ends. Ray's own
        tail polls its file once a second and closes a second or two after the job ended; the
        job's status is polled meanwhile, and once it is terminal the rest of the log (all
        written: the driver has exited) is read at once."""
        import asyncio

        self.record(job_id)  # JobUnknown rather than Ray's error for an unknown id
        chunks = self._client.tail_job_logs(job_id)

        async def next_chunk() -> str | None:
            return await anext(chunks, None)

        loop = asyncio.new_event_loop()
        received = 0
        pending = loop.create_task(next_chunk())
        try:
            while True:
                done, _ = loop.run_until_complete(asyncio.wait({pending}, timeout=poll_s))
                if done:
                    chunk = pending.result()
                    if chunk is None:
                        return
                    received += len(chunk)
                    yield chunk
                    pending = loop.create_task(next_chunk())
                elif self.record(job_id).terminal:
                    rest = self._client.get_job_logs(job_id)[received:]
                    if rest:
                        yield rest
                    return
        finally:
            pending.cancel()
            loop.run_until_complete(asyncio.gather(pending, return_exceptions=True))
            loop.run_until_complete(chunks.aclose())
            loop.close()

    def logs(self, job_id: str) -> str:
        self.record(job_id)
        return self._client.get_job_logs(job_id)


def _record(details) -> JobRecord:
    def seconds(ms: int | None) -> float | None:
        return ms / 1000 if ms else None

    return JobRecord(
        job_id=details.submission_id,
        status=str(details.status.value),
        start_time=seconds(details.start_time),
        end_time=seconds(details.end_time),
        entrypoint=details.entrypoint,
        exit_code=details.driver_exit_code,
        message=details.message or "",
    )
