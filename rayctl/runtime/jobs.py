"""Jobs: Ray programs run under Ray's job supervision (Ray Jobs: the JobManager in the head's
dashboard starts each driver under a supervisor actor), so a job outlives the client that
submitted it and is listed, followed and stopped through Ray.

Every Ray call happens on the head, through its CommandRunner (runtime.job_agent run with the
runtime's Python and the cluster's Ray authentication), so no Ray port is ever reached from
here. The script and working dir are staged on the head and handed to Ray as the job's
`working_dir`: Ray packages them and runs the job in its own copy, so the job's cwd holds the
user's files and nothing of rayctl's.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rayctl.config.schema import ClusterConfig
from rayctl.errors import RayctlError
from rayctl.runtime import head_paths
from rayctl.runtime.install import runtime_python
from rayctl.runtime.nodes import Node
from rayctl.runtime.ray_adapter import JobRecord, JobUnknown
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import CommandRunner
from rayctl.templates import shell_path


class BadJobId(RayctlError):
    """Not a job id: a usage mistake, refused before anything runs."""

    exit_code = 2


def new_job_id() -> str:
    return f"job-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


# rayctl's ids (new_job_id) and Ray's own (`raysubmit_` and 16 letters or digits).
_JOB_ID = re.compile(r"job-\d{8}-\d{6}-[0-9a-f]{4}|raysubmit_[A-Za-z0-9]{16}")


def check_job_id(job_id: str) -> str:
    """Refuses anything but a job id: ids reach a shell and Ray's HTTP paths on the head."""
    if not _JOB_ID.fullmatch(job_id):
        raise BadJobId(
            f"JOB: {job_id!r} is not a job id; they look like job-20250101-120000-ab12 "
            "(rayctl's, printed by `rayctl submit`) or raysubmit_ and 16 letters (Ray's); "
            "`rayctl jobs` lists them"
        )
    return job_id


class BadRuntimeEnv(RayctlError):
    """A job's --runtime-env / --pip that cannot be combined: refused before anything runs."""

    exit_code = 2


# Ray's default pip options (ray/_private/runtime_env/pip.py), kept when rayctl adds its own.
_RAY_PIP_OPTIONS = ["--disable-pip-version-check", "--no-cache-dir"]


def job_runtime_env(
    runtime_env: Mapping[str, Any], pip: Sequence[str], *, wheelhouse: str | None
) -> dict[str, Any]:
    """The Ray runtime_env a job is submitted with (rayctl adds working_dir and env_vars' own
    RAYCTL_JOB_ID on the head): `runtime_env` with the `pip` packages added to its pip list,
    and, for a cluster with a wheelhouse (`wheelhouse`: its path as the nodes see it), pip told
    to install from there only, unless the runtime env gives pip_install_options itself."""
    env = dict(runtime_env)
    for key, instead in (("working_dir", "--working-dir DIR"), ("entrypoint", "SCRIPT")):
        if key in env:
            raise BadRuntimeEnv(f"runtime env: {key} is rayctl's: use {instead} instead")
    if "RAYCTL_JOB_ID" in (env.get("env_vars") or {}):
        raise BadRuntimeEnv("runtime env: env_vars.RAYCTL_JOB_ID is set by rayctl; remove it")
    if pip:
        clash = [k for k in ("conda", "uv") if k in env]
        if clash:
            raise BadRuntimeEnv(
                f"--pip cannot go with the runtime env's {clash[0]} (Ray installs a job's "
                f"packages with one tool): list the packages in its {clash[0]} section instead"
            )
        given = env.get("pip", [])
        if isinstance(given, str):
            raise BadRuntimeEnv(
                f"runtime env: pip is a requirements file ({given}); --pip adds to a list of "
                "packages: put them in the runtime env's pip list instead"
            )
        if isinstance(given, dict):
            env["pip"] = {**given, "packages": [*given.get("packages", []), *pip]}
        else:
            env["pip"] = [*given, *pip]
    if wheelhouse and isinstance(env.get("pip"), list | dict):
        spec = env["pip"] if isinstance(env["pip"], dict) else {"packages": env["pip"]}
        if "pip_install_options" not in spec:
            options = ["--no-index", "--find-links", wheelhouse, *_RAY_PIP_OPTIONS]
            spec = {**spec, "pip_install_options": options}
        env["pip"] = spec
    return env


_RUNTIME_ENV_FAILED = "runtime_env setup failed"
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")


class EndedJob(Protocol):
    """What tells how a job ended: a JobRecord, or the Python API's Job."""

    @property
    def job_id(self) -> str: ...

    @property
    def message(self) -> str: ...


def runtime_env_failure(record: EndedJob, *, wheelhouse: str | None) -> str | None:
    """What to tell the user when Ray could not set up the job's runtime env (the job then
    fails before its program runs, with Ray's traceback as its message); None otherwise."""
    if not record.message.startswith(_RUNTIME_ENV_FAILED):
        return None
    pip_errors = [
        line.strip() for line in record.message.splitlines() if line.strip().startswith("ERROR:")
    ]
    missing = sorted(set(_NO_DISTRIBUTION.findall(record.message)))
    where = f"the wheelhouse ({wheelhouse} on the nodes)" if wheelhouse else "the package index"
    if missing:
        what = f"pip found no {', '.join(missing)} in {where}: check the name and version" + (
            "; add its wheel, and its dependencies', to rayctl.runtime.wheelhouse and run "
            "`rayctl up` to copy it to the nodes"
            if wheelhouse
            else ", and that the nodes reach the index (else set rayctl.runtime.wheelhouse)"
        )
    elif pip_errors:
        what = "pip could not install the job's packages: fix the --pip / runtime env pip list"
    else:
        what = "check the --runtime-env given (Ray's message below)"
        pip_errors = record.message.splitlines()[:3]
    said = "\n".join(f"  {line}" for line in pip_errors)
    return (
        f"Job {record.job_id} failed before its program ran: Ray could not set up its runtime "
        f"env; {what}. Ray said:\n{said}"
    )


@dataclass(frozen=True)
class Submission:
    script: str  # local path
    args: Sequence[str]
    working_dir: str | None
    runtime_env: Mapping[str, Any] = field(default_factory=dict)  # job_runtime_env's


@dataclass(frozen=True)
class HeadJobs:
    """Ray Jobs of one cluster, reached through its head's runner."""

    runner: CommandRunner
    python: str  # the runtime's Python on the head
    gcs_address: str
    auth: ClusterAuth

    @classmethod
    def of(cls, config: ClusterConfig, head: Node, runner: CommandRunner, home: Path) -> HeadJobs:
        return cls(
            runner, runtime_python(config), head.gcs_address, ClusterAuth.local(config, home=home)
        )

    def _agent(
        self,
        action: str,
        *args: str,
        output: Callable[[str], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Run one job_agent action on the head; its result. Lines that are not results are
        the job's output (to `output`) or the agent's noise (kept for errors). `on_result`
        sees each result as it arrives (a `run` gives two: submitted, then the end)."""
        mark = secrets.token_hex(8)
        agent = shlex.join(
            ["-m", "rayctl.runtime.job_agent", action, self.gcs_address, mark, *args]
        )
        command = f"{self.auth.shell_exports()}; exec {shell_path(self.python)} {agent}"
        results: list[Any] = []

        def line(text: str) -> None:
            if text.startswith(f"{mark} "):
                results.append(json.loads(text[len(mark) + 1 :]))
                if on_result:
                    on_result(results[-1])
            elif output:
                output(text)

        ran = self.runner.run(command, stream=line, timeout_s=timeout_s)
        if not results:
            raise RayctlError(
                f"could not reach Ray Jobs on the head (exit {ran.exit_code}):\n{ran.tail}"
            )
        result = results[-1]
        if isinstance(result, dict) and "error" in result:
            error = JobUnknown if result["exit_code"] == JobUnknown.exit_code else RayctlError
            raise error(result["error"])
        return result

    def _stage(self, job_id: str, submission: Submission) -> list[str]:
        """Put the script (and working dir) on the head; the agent's arguments to submit it."""
        staging = head_paths.job_dir(job_id)
        if submission.working_dir:
            self.runner.sync(submission.working_dir, staging)
        script = os.path.basename(submission.script)
        self.runner.put(submission.script, f"{staging}/{script}")
        args = json.dumps(list(submission.args))
        return [job_id, staging, script, args, json.dumps(dict(submission.runtime_env))]

    def submit(self, job_id: str, submission: Submission) -> None:
        """Submit and return once Ray has the job."""
        self._agent("submit", *self._stage(check_job_id(job_id), submission), timeout_s=300)

    def run(
        self,
        job_id: str,
        submission: Submission,
        *,
        on_submitted: Callable[[], None],
        output: Callable[[str], None],
    ) -> JobRecord:
        """Submit, call `on_submitted` once Ray has the job, stream its output until it
        ends; its record then."""

        def result(value: Any) -> None:
            if isinstance(value, dict) and "submitted" in value:
                on_submitted()

        staged = self._stage(check_job_id(job_id), submission)
        end = self._agent("run", *staged, output=output, on_result=result)
        return JobRecord.model_validate(end)

    def logs(self, job_id: str, output: Callable[[str], None], *, follow: bool) -> JobRecord:
        """Print the job's output (with `follow`, until it ends); its record after."""
        action = "follow" if follow else "logs"
        return JobRecord.model_validate(self._agent(action, check_job_id(job_id), output=output))

    def record(self, job_id: str) -> JobRecord:
        """The job as Ray sees it now (JobUnknown for an unknown id)."""
        return self.logs(job_id, lambda _line: None, follow=False)

    def list(self) -> list[JobRecord]:
        return [JobRecord.model_validate(job) for job in self._agent("list", timeout_s=60)]

    def stop(self, job_id: str, *, timeout_s: float) -> JobRecord:
        """Stop the job and wait until Ray says it ended (JobUnknown for an unknown id)."""
        stopped = self._agent(
            "stop", check_job_id(job_id), "--timeout", str(timeout_s), timeout_s=timeout_s + 60
        )
        return JobRecord.model_validate(stopped)

    def dashboard_address(self) -> tuple[str, int]:
        """Where the head's dashboard listens, as the head sees it (from Ray's GCS)."""
        address = self._agent("dashboard", timeout_s=90)["address"]
        host, port = address.rsplit(":", 1)
        return host, int(port)

    def stop_all(self, *, timeout_s: float) -> list[JobRecord]:
        """Stop every job still running and wait until their drivers are gone; those jobs."""
        stopped = self._agent("stop-all", "--timeout", str(timeout_s), timeout_s=timeout_s + 60)
        return [JobRecord.model_validate(job) for job in stopped]
