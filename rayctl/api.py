"""The Python API: a cluster driven from a notebook or a script, as the CLI drives it.

    with rayctl.Cluster.from_config("cluster.yaml") as cluster:
        job = cluster.submit("job.py", "--tasks", "4")
        print(job.exit_code, job.output)
    # the cluster is down here, also when the block raised

Every method runs the same operations as the `rayctl` command of its name (the CLI is a thin
layer over this module), raises rayctl's classed errors (rayctl.errors: ConfigError with
FILE:LINE:COL lines for an invalid config, ClusterNotFound, ProviderError, ...) and returns
typed records, never dicts.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rayctl.config.loader import LoadedConfig
from rayctl.errors import RayctlError
from rayctl.ops import down as down_op
from rayctl.ops import up as up_op
from rayctl.ops.head import find_head
from rayctl.ops.status import ClusterStatus, cluster_status
from rayctl.paths import rayctl_home
from rayctl.providers.base import Node, NodeProvider
from rayctl.providers.registry import load_config, make_provider
from rayctl.runtime import jobs
from rayctl.runtime.bootstrap import StageCallback
from rayctl.runtime.install import node_wheelhouse
from rayctl.runtime.nodes import Tag
from rayctl.runtime.ray_adapter import JobRecord
from rayctl.runtime.ray_auth import ClusterAuth

__all__ = ["BadSubmission", "Cluster", "Job", "UpFailed"]

# Words that may start an entrypoint before the script: `python job.py` runs as `job.py`
# (jobs always run under the runtime's own Python).
_PYTHONS = ("python", "python3")


class UpFailed(RayctlError):
    """`up` ended with nodes that failed their bootstrap; `report` says which and why."""

    def __init__(self, report: up_op.UpReport) -> None:
        self.report = report
        super().__init__(
            "\n".join(str(f) for f in report.failed)
            or "the head did not come up; `Cluster.down()` removes what is left"
        )


class BadSubmission(RayctlError):
    """What `submit` was given names no script here (a usage mistake: nothing ran)."""

    exit_code = 2


@dataclass(frozen=True)
class Job:
    """A job `Cluster.submit` started. Submitted with `wait=False`, it is PENDING with no
    exit code: `Cluster.job(job_id)` asks Ray again."""

    cluster: Cluster = field(repr=False, compare=False)
    job_id: str
    status: str  # Ray's: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    exit_code: int | None  # the program's; None while it runs, or when stopped or never run
    message: str  # Ray's word on how it ended (why it failed, for a job that never ran)
    output: str  # what the program printed, when `submit` waited and had no `output`

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def logs(self) -> str:
        """The job's output as Ray keeps it (so far, for a job still running)."""
        return self.cluster.logs(self.job_id)


class Cluster:
    """One cluster of a validated config. Creating the object touches nothing; `up` creates
    or updates the cluster, `down` removes it. As a context manager it comes up on entry and
    always goes down on exit; an exception of the block propagates."""

    def __init__(self, loaded: LoadedConfig, *, home: Path | None = None) -> None:
        self.loaded = loaded
        self.home = home or rayctl_home()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], cluster_name: str | None = None) -> Cluster:
        """The cluster of the config file at `path` (Ray's cluster YAML), `cluster_name`
        overriding its `cluster_name`. Raises ConfigError (its `problems` are
        FILE:LINE:COL: key: message lines) when the config is invalid."""
        return cls(load_config(path, cluster_name=cluster_name))

    @property
    def name(self) -> str:
        return self.loaded.name

    def _provider(self) -> NodeProvider:
        return make_provider(self.loaded.config, home=self.home)

    def __repr__(self) -> str:
        return f"Cluster({self.name!r}, provider={self.loaded.config.provider.type!r})"

    # --- lifecycle -----------------------------------------------------------------------

    def up(
        self,
        *,
        wait: bool = True,
        on_stage: StageCallback | None = None,
        confirm: Callable[[str], bool] | None = None,
        check: bool = True,
    ) -> up_op.UpReport:
        """Create or update the head and each node type's min_workers (idempotent).
        `wait=False` returns once the workers' Ray started, before they joined. `on_stage`
        is called (from bootstrap threads) with each node's stage changes. `confirm` is asked
        before the head is replaced (its node_config changed); by default it is. With
        `check`, nodes that failed raise UpFailed (its `report` has them)."""
        report = up_op.up(
            self.loaded,
            home=self.home,
            on_stage=on_stage or (lambda _node, _change: None),
            confirm=confirm or (lambda _question: True),
            wait=wait,
        )
        if check and (report.failed or report.head.id not in report.outcomes):
            raise UpFailed(report)
        return report

    def down(
        self,
        *,
        workers_only: bool = False,
        force: bool = False,
        on_stage: down_op.DownCallback | None = None,
    ) -> down_op.DownReport:
        """Stop the autoscaler and the jobs, terminate every node, confirm none is left and
        forget the cluster (nothing to do when it does not exist). `workers_only` keeps the
        head; `force` forgets nodes that cannot be terminated (listed in `may_remain`).
        `on_stage` is called with each node's DownStage as `down` goes."""
        return down_op.down(
            self.loaded,
            home=self.home,
            workers_only=workers_only,
            force=force,
            on_stage=on_stage,
        )

    def nodes(self) -> list[Node]:
        """The cluster's nodes as its provider lists them now."""
        return self._provider().list_nodes()

    def status(self) -> ClusterStatus:
        """Nodes (provider state, bootstrap stage, Ray's view, resources), node types and
        the autoscaler's state. ClusterNotFound when the cluster has no nodes."""
        return cluster_status(self.loaded, home=self.home)

    def __enter__(self) -> Cluster:
        try:
            self.up()
        except BaseException as exc:  # Ctrl-C too: `__exit__` is not called for a failed enter
            self._down_after(exc)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.down()
        else:
            self._down_after(exc)

    def _down_after(self, exc: BaseException) -> None:
        """Tear down while `exc` propagates: a failed teardown is added to it as a note
        rather than hiding it."""
        try:
            self.down()
        except Exception as failed:
            exc.add_note(
                f"rayctl: tearing down cluster '{self.name}' failed too: {failed}; "
                f"run `rayctl down {self.name}`"
            )

    # --- how a driver reaches the cluster ----------------------------------------------------

    @property
    def address(self) -> str:
        """Where the head's Ray listens (`ip:port` of its GCS): `ray.init(address=...)` with
        `ray_env()` in the environment. A cloud or on-prem head's address is internal to its
        network; from outside it, submit jobs instead."""
        return find_head(self._provider()).gcs_address

    @property
    def dashboard_url(self) -> str | None:
        """The head's dashboard, also the Ray Jobs address (None before Ray started)."""
        head = find_head(self._provider())
        port = head.tags.get(Tag.DASHBOARD_PORT)
        return f"http://{head.internal_ip}:{port}" if port else None

    def ray_env(self) -> dict[str, str]:
        """The environment a Ray client of this machine needs for this cluster's token
        authentication (`os.environ.update(cluster.ray_env())` before `ray.init`)."""
        token = ClusterAuth.local(self.loaded.config, home=self.home).require_token()
        if token is None:
            return {"RAY_AUTH_MODE": "disabled"}
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}

    # --- jobs ----------------------------------------------------------------------------

    def _jobs(self) -> jobs.HeadJobs:
        provider = self._provider()
        head = find_head(provider)
        return jobs.HeadJobs.of(self.loaded.config, head, provider.runner(head), self.home)

    def submit(
        self,
        script_or_entrypoint: str | os.PathLike[str],
        *args: str,
        working_dir: str | os.PathLike[str] | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        pip: Sequence[str] = (),
        wait: bool = True,
        output: Callable[[str], None] | None = None,
        on_submitted: Callable[[], None] | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Run a Ray program on the cluster under Ray's job supervision, as `rayctl submit`
        does. `script_or_entrypoint` is a local script, or an entrypoint such as
        `"python job.py --tasks 4"` whose script is a local file; `args` follow its own.
        `runtime_env` is Ray's for the job, `pip` packages added to its pip list (installed
        by Ray for this job only, from the cluster's wheelhouse when it has one).
        With `wait` (the default) returns when the job ended, with its output in
        `Job.output`, or passed line by line to `output` as it comes; otherwise it returns
        once Ray has the job. `on_submitted` is
        called once Ray has the job; `job_id` chooses its id (a new one by default)."""
        script, words = _entrypoint(script_or_entrypoint)
        env = jobs.job_runtime_env(
            runtime_env or {}, pip, wheelhouse=node_wheelhouse(self.loaded.config)
        )
        submission = jobs.Submission(
            script, [*words, *args], os.fspath(working_dir) if working_dir else None, env
        )
        job_id = job_id or jobs.new_job_id()
        head_jobs = self._jobs()
        if not wait:
            head_jobs.submit(job_id, submission)
            if on_submitted:
                on_submitted()
            # PENDING is how Ray records a job it accepted; no second call to ask it again
            return Job(self, job_id, "PENDING", None, "", output="")
        lines: list[str] = []
        record = head_jobs.run(
            job_id,
            submission,
            on_submitted=on_submitted or (lambda: None),
            output=output or lines.append,
        )
        return self._job(record, output="".join(f"{line}\n" for line in lines))

    def _job(self, record: JobRecord, *, output: str) -> Job:
        return Job(self, record.job_id, record.status, record.exit_code, record.message, output)

    def job(self, job_id: str) -> Job:
        """A job as Ray sees it now (JobUnknown for an id it does not know)."""
        return self._job(self._jobs().record(job_id), output="")

    def jobs(self) -> list[JobRecord]:
        """The cluster's jobs, oldest first."""
        return self._jobs().list()

    def logs(
        self, job_id: str, *, follow: bool = False, output: Callable[[str], None] | None = None
    ) -> str:
        """A job's output (or "" with `output`, which gets it line by line as it comes);
        with `follow`, waiting until the job ends."""
        lines: list[str] = []
        self._jobs().logs(job_id, output or lines.append, follow=follow)
        return "".join(f"{line}\n" for line in lines)

    def stop(self, job_id: str, *, timeout_s: float = 30.0) -> JobRecord:
        """Stop a job and wait until Ray says it ended (its driver's processes are gone)."""
        return self._jobs().stop(job_id, timeout_s=timeout_s)


def _entrypoint(given: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """The local script and its leading arguments of a script path or an entrypoint."""
    if isinstance(given, os.PathLike) or Path(given).is_file():
        script, words = os.fspath(given), []
    else:
        script, *words = shlex.split(given) or [""]
        if script in _PYTHONS and words:
            script, *words = words
    if not Path(script).is_file():
        raise BadSubmission(
            f"{given}: no such script here; give a local Python file (with its arguments: "
            "'job.py --tasks 4'), which rayctl uploads to the head"
        )
    return script, words
