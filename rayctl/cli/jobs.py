"""`rayctl submit`, `logs`, `jobs` and `stop`: Ray programs under Ray's job supervision."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import BaseModel
from rich.table import Table

from rayctl.api import Cluster, Job
from rayctl.cli.output import (
    CONFIG_ARG,
    JSON_OPT,
    NAME_OPT,
    ClientLost,
    client_signals,
    emit,
    err,
    home,
    load,
    out,
)
from rayctl.config.loader import LoadedConfig
from rayctl.ops.head import find_head
from rayctl.providers.registry import make_provider
from rayctl.runtime import jobs
from rayctl.runtime.install import node_wheelhouse
from rayctl.runtime.jobs import JobRecord

JOB_ARG = typer.Argument(
    ..., metavar="JOB", help="Job id, as `rayctl submit` printed it or `rayctl jobs` lists it."
)
STOP_TIMEOUT_S = 30.0


class DetachedJob(BaseModel):
    cluster_name: str
    job_id: str


class JobList(BaseModel):
    cluster_name: str
    jobs: list[JobRecord]


def _printer() -> Callable[[str], None]:
    """Prints the job's output on stdout; a reader that went away raises ClientLost."""

    def show(line: str) -> None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # Nothing more can reach stdout, not even at exit: point it at /dev/null.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ClientLost(signal.SIGPIPE) from None

    return show


def _hint(cluster: str, job_id: str) -> str:
    return (
        f"follow it with `rayctl logs {cluster} {job_id} --follow`, "
        f"stop it with `rayctl stop {cluster} {job_id}`"
    )


def _exit_with(record: Job | JobRecord, wheelhouse: str | None = None) -> None:
    """Say how the job ended on stderr and exit with its driver's code (1 when it has none,
    saying why). `wheelhouse`: the cluster's, as the nodes see it."""
    if record.exit_code is not None:
        err.print(f"Job {record.job_id} exited with {record.exit_code}.")
        raise typer.Exit(record.exit_code)
    env_failure = jobs.runtime_env_failure(record, wheelhouse=wheelhouse)
    if env_failure:
        err.print(env_failure)
    elif record.status == "STOPPED":
        err.print(f"Job {record.job_id} was stopped before it ended (`rayctl stop` or `down`).")
    else:
        why = f": {record.message}" if record.message else ""
        err.print(f"Job {record.job_id} {record.status.lower()} without an exit code{why}")
    raise typer.Exit(1)


def _runtime_env(given: str) -> dict[str, Any]:
    """--runtime-env: a JSON object, or the path of a YAML or JSON file holding one."""
    text, source = given, "--runtime-env"
    if not given.lstrip().startswith("{"):
        path = Path(given)
        if not path.is_file():
            raise typer.BadParameter(
                f"{given}: no such file, and not a JSON object", param_hint="--runtime-env"
            )
        text, source = path.read_text(), str(path)
    try:
        value = yaml.safe_load(text)  # YAML holds JSON
    except yaml.YAMLError as exc:
        raise typer.BadParameter(
            f"{source}: not YAML or JSON: {exc}", param_hint="--runtime-env"
        ) from None
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f"{source}: a runtime env is a mapping (pip, env_vars, ...), not "
            f"{type(value).__name__}",
            param_hint="--runtime-env",
        )
    return value


def _head_jobs(loaded: LoadedConfig) -> tuple[str, jobs.HeadJobs]:
    provider = make_provider(loaded.config, home=home())
    head = find_head(provider)
    return loaded.name, jobs.HeadJobs.of(loaded.config, head, provider.runner(head), home())


def submit(
    config: Path = CONFIG_ARG,
    script: Path = typer.Argument(..., help="Python script to run on the head.", exists=False),
    args: list[str] = typer.Argument(
        None, help="Arguments for the script, passed through untouched (options included)."
    ),
    detach: bool = typer.Option(False, "--detach", "-d", help="Print a job id and return."),
    working_dir: Path | None = typer.Option(
        None, "--working-dir", help="Directory uploaded beside the script (its cwd)."
    ),
    runtime_env: str | None = typer.Option(
        None,
        "--runtime-env",
        metavar="FILE|JSON",
        help="Ray's runtime_env for the job: a YAML or JSON file, or a JSON object.",
    ),
    pip: list[str] = typer.Option(
        None,
        "--pip",
        metavar="PKG",
        help="A package the job needs (a pip requirement), installed by Ray for the job "
        "only; repeat for more. Added to the runtime env's pip list.",
    ),
    cluster_name: str | None = NAME_OPT,
    json_output: bool = typer.Option(
        False, "--json", help="With --detach: print the job as JSON, for scripts."
    ),
) -> None:
    """Run a Ray program on the cluster under Ray's job supervision: prints its job id first,
    streams its output, exits with its exit code. Ctrl-C leaves the job running."""
    if json_output and not detach:
        raise typer.BadParameter("--json goes with --detach", param_hint="--json")
    if not script.is_file():
        raise typer.BadParameter(f"{script}: no such file", param_hint="SCRIPT")
    if working_dir is not None and not working_dir.is_dir():
        raise typer.BadParameter(f"{working_dir}: not a directory", param_hint="--working-dir")
    if args and args[0] == "--":  # `SCRIPT -- ARGS`, needed before arguments passed through
        args = args[1:]
    given_env = _runtime_env(runtime_env) if runtime_env else {}
    cluster = Cluster(load(config, cluster_name), home=home())
    name, args = cluster.name, args or []
    wheelhouse = node_wheelhouse(cluster.loaded.config)
    job_id = jobs.new_job_id()
    if detach:
        cluster.submit(
            script,
            *args,
            working_dir=working_dir,
            runtime_env=given_env,
            pip=pip or [],
            job_id=job_id,
            wait=False,
        )
        emit(
            DetachedJob(cluster_name=name, job_id=job_id),
            lambda j: out.print(j.job_id),
            as_json=json_output,
        )
        err.print(f"Job {job_id} submitted; {_hint(name, job_id)}.")
        return
    submitted = False

    def on_submitted() -> None:
        nonlocal submitted
        submitted = True
        err.print(f"Job {job_id} submitted; Ctrl-C leaves it running.")

    try:
        with client_signals():
            record = cluster.submit(
                script,
                *args,
                working_dir=working_dir,
                runtime_env=given_env,
                pip=pip or [],
                job_id=job_id,
                on_submitted=on_submitted,
                output=_printer(),
            )
    except (KeyboardInterrupt, ClientLost) as exc:
        signum = exc.signum if isinstance(exc, ClientLost) else signal.SIGINT
        state = "keeps running" if submitted else "may have been submitted (see `rayctl jobs`)"
        err.print(
            f"rayctl {signal.Signals(signum).name}: job {job_id} {state} on cluster "
            f"'{name}'; {_hint(name, job_id)}."
        )
        raise typer.Exit(128 + signum) from None
    _exit_with(record, wheelhouse)


def logs(
    config: Path = CONFIG_ARG,
    job_id: str = JOB_ARG,
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow until the job ends."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Print a job's output (Ray's job logs); with --follow, wait for its end and exit with
    its exit code."""
    jobs.check_job_id(job_id)
    loaded = load(config, cluster_name)
    _, head_jobs = _head_jobs(loaded)
    record = head_jobs.logs(job_id, _printer(), follow=follow)
    if follow:
        _exit_with(record, node_wheelhouse(loaded.config))


def jobs_(
    config: Path = CONFIG_ARG, cluster_name: str | None = NAME_OPT, json_output: bool = JSON_OPT
) -> None:
    """List the cluster's jobs: id, status, start and end time, exit code, entrypoint."""
    name, head_jobs = _head_jobs(load(config, cluster_name))
    emit(JobList(cluster_name=name, jobs=head_jobs.list()), _render_jobs, as_json=json_output)


def _render_jobs(result: JobList) -> None:
    if not result.jobs:
        out.print(f"Cluster '{result.cluster_name}' has no jobs; `rayctl submit` runs one.")
        return

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"

    table = Table(box=None, pad_edge=False)
    for column in ("job_id", "status", "start_time", "end_time", "exit_code", "entrypoint"):
        table.add_column(column)
    for job in result.jobs:
        code = "-" if job.exit_code is None else str(job.exit_code)
        table.add_row(
            job.job_id, job.status, when(job.start_time), when(job.end_time), code, job.entrypoint
        )
    out.print(table)


def stop(
    config: Path = CONFIG_ARG,
    job_id: str = JOB_ARG,
    timeout: float = typer.Option(
        STOP_TIMEOUT_S, "--timeout", min=1, help="Seconds to wait for Ray to say it ended."
    ),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Stop a job and wait until it has ended (exit 0 also when it had ended already)."""
    jobs.check_job_id(job_id)
    _, head_jobs = _head_jobs(load(config, cluster_name))
    record = head_jobs.stop(job_id, timeout_s=timeout)
    out.print(f"Job {job_id}: {record.status}.")
