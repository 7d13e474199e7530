"""`rayctl submit` and `rayctl logs`."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import BaseModel

from rayctl.cli.output import CONFIG_ARG, NAME_OPT, emit, err, home, load, out
from rayctl.ops.head import find_head
from rayctl.providers.registry import make_provider
from rayctl.runtime import jobs
from rayctl.runtime.install import runtime_python
from rayctl.runtime.ray_auth import ClusterAuth


class DetachedJob(BaseModel):
    cluster_name: str
    job_id: str


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
    cluster_name: str | None = NAME_OPT,
    json_output: bool = typer.Option(
        False, "--json", help="With --detach: print the job as JSON, for scripts."
    ),
) -> None:
    """Run a Ray program on the cluster's head; exits with the program's exit code."""
    if json_output and not detach:
        raise typer.BadParameter("--json goes with --detach", param_hint="--json")
    if not script.is_file():
        raise typer.BadParameter(f"{script}: no such file", param_hint="SCRIPT")
    if working_dir is not None and not working_dir.is_dir():
        raise typer.BadParameter(f"{working_dir}: not a directory", param_hint="--working-dir")
    if args and args[0] == "--":  # `SCRIPT -- ARGS`, needed before arguments passed through
        args = args[1:]
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    head = find_head(provider)
    spec = jobs.JobSpec(
        script=str(script),
        args=args or [],
        working_dir=str(working_dir) if working_dir else None,
        python=runtime_python(loaded.config),
        gcs_address=head.gcs_address,
        auth=ClusterAuth.local(loaded.config, home=home()),
    )
    runner = provider.runner(head)
    if detach:
        job = DetachedJob(cluster_name=loaded.name, job_id=jobs.start_detached(runner, spec))
        emit(job, lambda j: out.print(j.job_id), as_json=json_output)
        err.print(f"Follow its output with: rayctl logs {config} {job.job_id} --follow")
        return
    job_id, code = jobs.run(runner, spec, stream=lambda line: out.print(line))
    err.print(f"Job {job_id} exited with {code}.")
    raise typer.Exit(code)


def logs(
    config: Path = CONFIG_ARG,
    job_id: str = typer.Argument(..., help="Job id printed by `rayctl submit --detach`."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow until the job ends."),
    cluster_name: str | None = NAME_OPT,
) -> None:
    """Print a job's output; with --follow, exit with the job's exit code."""
    jobs.check_job_id(job_id)
    loaded = load(config, cluster_name)
    provider = make_provider(loaded.config, home=home())
    runner = provider.runner(find_head(provider))
    code = jobs.logs(runner, job_id, lambda line: out.print(line), follow=follow)
    if follow:
        err.print(f"Job {job_id} exited with {code}.")
        raise typer.Exit(code)
