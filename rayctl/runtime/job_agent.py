"""What `rayctl` runs on the head for its job commands: `python -m rayctl.runtime.job_agent
ACTION GCS_ADDRESS MARK ...`, with the runtime's Python and the cluster's Ray authentication in
the environment (runtime.jobs builds the command).

A job's output passes through as it comes; every result is one line `MARK JSON`, MARK being a
random word the caller chose for this call, so no output of a job can pass for a result. Errors
are results too: `{"error": ..., "exit_code": ...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterable

from rayctl.errors import RayctlError
from rayctl.runtime.ray_adapter import RayJobs, dashboard_address, gcs_listening

STOP_TIMEOUT_S = 30.0


def _result(mark: str, value: object) -> None:
    sys.stdout.write(f"{mark} {json.dumps(value)}\n")
    sys.stdout.flush()


def _job_output(job_id: str, chunks: Iterable[str]) -> None:
    """Write the job's output as it comes. Ray's log of a job starts with its own lines
    (runtime env set-up, then "Running entrypoint for job ...") before the program's: those
    are left out (a job that fails before its program runs says why in its record)."""
    started = f"Running entrypoint for job {job_id}: "
    program = False
    pending = ""
    for chunk in chunks:
        *lines, pending = (pending + chunk).split("\n")
        for line in lines:
            if program:
                sys.stdout.write(line + "\n")
            program = program or line.startswith(started)
        sys.stdout.flush()
    if pending and program:
        sys.stdout.write(pending + "\n")
        sys.stdout.flush()


def _submit(jobs: RayJobs, args: argparse.Namespace) -> None:
    """Submit the script staged in `args.staging` (Ray keeps its own copy), then remove it."""
    staging = os.path.expanduser(args.staging)
    # The runtime's own Python, by its absolute path: the job sees what setup installed.
    entrypoint = shlex.join([sys.executable, "-u", args.script, *json.loads(args.args)])
    try:
        runtime_env = json.loads(args.runtime_env)
        env_vars = {**runtime_env.get("env_vars", {}), "RAYCTL_JOB_ID": args.job_id}
        runtime_env.update(working_dir=staging, env_vars=env_vars)
        jobs.submit(args.job_id, entrypoint, runtime_env=runtime_env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _result(args.mark, {"submitted": args.job_id})


def _act(args: argparse.Namespace) -> None:
    if args.action == "stop-all" and not gcs_listening(args.gcs_address):
        _result(args.mark, [])  # no Ray on the head: no job runs there
        return
    if args.action == "dashboard":
        _result(args.mark, {"address": dashboard_address(args.gcs_address)})
        return
    jobs = RayJobs(args.gcs_address)
    if args.action in ("submit", "run"):
        _submit(jobs, args)
        if args.action == "submit":
            return
    if args.action in ("run", "follow"):
        _job_output(args.job_id, jobs.follow_logs(args.job_id))
        _result(args.mark, jobs.record(args.job_id).model_dump())
    elif args.action == "logs":
        _job_output(args.job_id, [jobs.logs(args.job_id)])
        _result(args.mark, jobs.record(args.job_id).model_dump())
    elif args.action == "list":
        _result(args.mark, [job.model_dump() for job in jobs.list()])
    elif args.action == "stop":
        [stopped] = jobs.stop([args.job_id], timeout_s=args.timeout)
        _result(args.mark, stopped.model_dump())
    elif args.action == "stop-all":
        running = [job.job_id for job in jobs.list() if not job.terminal]
        stopped = jobs.stop(running, timeout_s=args.timeout)
        _result(args.mark, [job.model_dump() for job in stopped])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rayctl.runtime.job_agent")
    actions = parser.add_subparsers(dest="action", required=True)
    for name in ("submit", "run", "follow", "logs", "list", "stop", "stop-all", "dashboard"):
        action = actions.add_parser(name)
        action.add_argument("gcs_address")
        action.add_argument("mark")
        if name not in ("list", "stop-all", "dashboard"):
            action.add_argument("job_id")
        if name in ("submit", "run"):
            action.add_argument("staging")
            action.add_argument("script")
            action.add_argument("args", help="the script's arguments, a JSON list")
            action.add_argument("runtime_env", help="Ray's runtime_env, a JSON object")
        if name in ("stop", "stop-all"):
            action.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        _act(args)
    except RayctlError as exc:
        _result(args.mark, {"error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except Exception as exc:  # Ray's client raises RuntimeError/ConnectionError and more
        _result(args.mark, {"error": f"{type(exc).__name__}: {exc}", "exit_code": 1})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
