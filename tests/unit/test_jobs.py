"""Job ids and the head's job agent output, without a cluster."""

from __future__ import annotations

import pytest

from rayctl.runtime import job_agent, jobs


@pytest.mark.parametrize("job_id", [jobs.new_job_id(), "raysubmit_4LamXRuQpYdSMg7J"])
def test_rayctls_and_rays_own_job_ids_are_accepted(job_id: str):
    assert jobs.check_job_id(job_id) == job_id


@pytest.mark.parametrize(
    "job_id",
    [
        "raysubmit_4LamXRuQpYdSMg7",  # one letter short
        "raysubmit_4LamXRuQpYdSMg7J;",
        "job-20250101-120000-ab1",
        "job-20250101-120000-AB12",
        "job-20250101-120000-ab12\n",
        "",
    ],
)
def test_anything_else_is_refused(job_id: str):
    with pytest.raises(jobs.BadJobId):
        jobs.check_job_id(job_id)


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
