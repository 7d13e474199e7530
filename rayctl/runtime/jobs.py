"""Jobs: a Ray program uploaded to the head and run there with RAY_ADDRESS set (and the
cluster's Ray token, by its path on the head).

Each job keeps a directory on the head (head_paths.job_dir): the script (and working dir), its
combined output, and once it ends its exit code, so `logs` works during and after a run.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rayctl.errors import RayctlError
from rayctl.runtime import head_paths
from rayctl.runtime.ray_auth import ClusterAuth
from rayctl.runtime.runner import CommandRunner
from rayctl.templates import shell_path


class JobNotFound(RayctlError):
    exit_code = 4


class BadJobId(RayctlError):
    """Not an id `new_job_id` makes: a usage mistake, refused before anything runs."""

    exit_code = 2


@dataclass(frozen=True)
class JobSpec:
    script: str  # local path
    args: Sequence[str]
    working_dir: str | None
    python: str
    gcs_address: str
    auth: ClusterAuth


def new_job_id() -> str:
    return f"job-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


_JOB_ID = re.compile(r"job-\d{8}-\d{6}-[0-9a-f]{4}")


def check_job_id(job_id: str) -> str:
    """Refuses ids `new_job_id` would not make: an id names a path on the head, so `../..`
    or shell text must never get that far."""
    if not _JOB_ID.fullmatch(job_id):
        raise BadJobId(
            f"JOB_ID: {job_id!r} is not a job id; rayctl's look like job-20250101-120000-ab12 "
            "(printed by `rayctl submit --detach`)"
        )
    return job_id


def _job_dir(job_id: str) -> str:
    """The job's directory as one shell word."""
    return shell_path(head_paths.job_dir(check_job_id(job_id)))


def _upload(runner: CommandRunner, spec: JobSpec, job_id: str) -> str:
    """Put the job's files on the head; returns the command that runs it in its directory."""
    job_dir = head_paths.job_dir(job_id)
    if spec.working_dir:
        runner.sync(spec.working_dir, job_dir)
    script_name = os.path.basename(spec.script)
    runner.put(spec.script, f"{job_dir}/{script_name}")
    env = f"RAY_ADDRESS={shlex.quote(spec.gcs_address)} RAYCTL_JOB_ID={shlex.quote(job_id)}"
    argv = f"{shell_path(spec.python)} {shlex.join(['-u', script_name, *spec.args])}"
    return f"{spec.auth.shell_exports()}; cd {_job_dir(job_id)} && {env} {argv}"


def run(runner: CommandRunner, spec: JobSpec, stream: Callable[[str], None]) -> tuple[str, int]:
    """Run the job in the foreground, streaming its output; returns (job id, exit code)."""
    job_id = new_job_id()
    command = _upload(runner, spec, job_id)
    d = _job_dir(job_id)
    logged = (
        f"echo $$ > {d}/pid; set -o pipefail; ( {command} ) 2>&1 | tee {d}/output.log; "
        f"code=$?; echo $code > {d}/exit_code; exit $code"
    )
    result = runner.run(logged, stream=stream)
    return job_id, result.exit_code


def start_detached(runner: CommandRunner, spec: JobSpec) -> str:
    """Start the job in its own session on the head and return its id at once."""
    job_id = new_job_id()
    command = _upload(runner, spec, job_id)
    d = _job_dir(job_id)
    inner = f"( {command} ) > {d}/output.log 2>&1; echo $? > {d}/exit_code"
    detached = f"nohup setsid bash -c {shlex.quote(inner)} > /dev/null 2>&1 < /dev/null"
    launch = f"{detached} & echo $! > {d}/pid"
    result = runner.run(launch, timeout_s=30)
    if not result.ok:
        raise RayctlError(f"could not start job {job_id}:\n{result.tail}")
    return job_id


def logs(runner: CommandRunner, job_id: str, stream: Callable[[str], None], *, follow: bool) -> int:
    """Print the job's output (following it until the job ends); returns the job's exit code,
    or 0 while it still runs without --follow."""
    d = _job_dir(job_id)
    if not runner.run(f"test -d {d}", timeout_s=15).ok:
        raise JobNotFound(f"no job {job_id} on this cluster's head")
    show = f"cat {d}/output.log"
    if follow:
        follow_running = f"tail -n +1 -f --pid=$(cat {d}/pid) {d}/output.log"
        show = f"if [ -f {d}/exit_code ]; then {show}; else {follow_running}; fi"
    runner.run(f"touch {d}/output.log; {show}", stream=stream)
    code = runner.run(f"cat {d}/exit_code", timeout_s=15)
    return int(code.tail.strip()) if code.ok and code.tail.strip().isdigit() else 0
