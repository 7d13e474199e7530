"""Job ids, the head's job agent output, a job's runtime env and its setup failures, without a
cluster (bad ids: test_bad_input)."""

from __future__ import annotations

import re

import pytest

from rayctl.runtime import job_agent, jobs
from rayctl.runtime.ray_adapter import JobRecord


def test_new_job_ids_pass_the_check():
    job_id = jobs.new_job_id()
    assert jobs.check_job_id(job_id) == job_id


def test_the_agent_passes_the_programs_output_on_without_rays_own_lines(capsys):
    job_id = "raysubmit_4LamXRuQpYdSMg7J"
    chunks = [
        "2026-01-01 INFO job_manager.py:581 -- Runtime env is setting up.\nRunning entry",
        f"point for job {job_id}: python -u job.py\nfirst\nsec",
        "ond\nRunning entrypoint for job someone-else: x\nlast without newline",
    ]
    job_agent._job_output(job_id, chunks)
    assert capsys.readouterr().out == (
        "first\nsecond\nRunning entrypoint for job someone-else: x\nlast without newline\n"
    )


def test_pip_packages_are_added_to_the_runtime_envs_pip_list():
    given = {"pip": ["requests==2.31"], "env_vars": {"A": "1"}}
    assert jobs.job_runtime_env(given, ["tiny", "other>=1"], wheelhouse=None) == {
        "pip": ["requests==2.31", "tiny", "other>=1"],
        "env_vars": {"A": "1"},
    }
    assert given == {"pip": ["requests==2.31"], "env_vars": {"A": "1"}}  # not changed
    spec = {"pip": {"packages": ["a"], "pip_check": False}}
    assert jobs.job_runtime_env(spec, ["b"], wheelhouse=None) == {
        "pip": {"packages": ["a", "b"], "pip_check": False}
    }
    assert jobs.job_runtime_env({}, ["b"], wheelhouse=None) == {"pip": ["b"]}
    assert jobs.job_runtime_env({"env_vars": {"A": "1"}}, [], wheelhouse="/w") == {
        "env_vars": {"A": "1"}  # no pip: nothing for the wheelhouse to do
    }


def test_a_wheelhouse_makes_pip_install_from_it_only_unless_told_otherwise():
    assert jobs.job_runtime_env({}, ["tiny"], wheelhouse="~/.rayctl/wheelhouse") == {
        "pip": {
            "packages": ["tiny"],
            "pip_install_options": [
                "--no-index",
                "--find-links",
                "~/.rayctl/wheelhouse",
                "--disable-pip-version-check",
                "--no-cache-dir",
            ],
        }
    }
    own = {"pip": {"packages": ["a"], "pip_install_options": ["--pre"]}}
    assert jobs.job_runtime_env(own, [], wheelhouse="/w") == own


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"working_dir": "."}, "use --working-dir DIR"),
        ({"entrypoint": "x"}, "use SCRIPT"),
        ({"env_vars": {"RAYCTL_JOB_ID": "x"}}, "RAYCTL_JOB_ID is set by rayctl"),
        ({"conda": {"dependencies": ["x"]}}, "--pip cannot go with the runtime env's conda"),
        ({"uv": ["x"]}, "--pip cannot go with the runtime env's uv"),
        ({"pip": "requirements.txt"}, "pip is a requirements file (requirements.txt)"),
    ],
)
def test_runtime_env_conflicts_are_usage_errors(given: dict, says: str):
    with pytest.raises(jobs.BadRuntimeEnv, match=re.escape(says)) as raised:
        jobs.job_runtime_env(given, ["tiny"], wheelhouse=None)
    assert raised.value.exit_code == 2


def test_conda_or_a_requirements_file_without_pip_packages_is_passed_on():
    for given in ({"conda": {"dependencies": ["x"]}}, {"pip": "requirements.txt"}):
        assert jobs.job_runtime_env(given, [], wheelhouse=None) == given


# The message Ray 2.60 gives a job whose pip env failed (shortened traceback, real pip lines).
RAY_ENV_FAILURE = (
    "runtime_env setup failed: Failed to set up runtime environment.\n"
    "Could not create the actor because its associated runtime env failed to be created.\n"
    "Traceback (most recent call last):\n  ...\n"
    "ray._private.runtime_env.utils.SubprocessCalledProcessError: Run cmd[9] failed.\n"
    "Last 50 lines of stdout:\n"
    "    Looking in links: /w\n"
    "    ERROR: Could not find a version that satisfies the requirement nope-pkg (from "
    "versions: none)\n"
    "    ERROR: No matching distribution found for nope-pkg\n"
)


def _failed(message: str) -> JobRecord:
    return JobRecord(
        job_id="raysubmit_4LamXRuQpYdSMg7J",
        status="FAILED",
        start_time=1.0,
        end_time=2.0,
        entrypoint="x",
        exit_code=None,
        message=message,
    )


def test_a_package_pip_cannot_find_is_named_with_what_to_do():
    said = jobs.runtime_env_failure(_failed(RAY_ENV_FAILURE), wheelhouse="/w")
    assert said is not None
    assert "pip found no nope-pkg in the wheelhouse (/w on the nodes)" in said
    assert "add its wheel" in said and "rayctl.runtime.wheelhouse" in said
    assert "ERROR: No matching distribution found for nope-pkg" in said
    assert "Traceback" not in said
    from_index = jobs.runtime_env_failure(_failed(RAY_ENV_FAILURE), wheelhouse=None)
    assert from_index is not None and "in the package index" in from_index


def test_other_failures_are_not_runtime_env_failures():
    assert (
        jobs.runtime_env_failure(_failed("Job entrypoint command failed"), wheelhouse=None) is None
    )
