"""Job ids and the head's job agent output, without a cluster (bad ids: test_bad_input)."""

from __future__ import annotations

from rayctl.runtime import job_agent, jobs


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
