"""`--json` on every command that prints a result: the same facts as the text, for scripts."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

JOB = "print('from the job')\n"


def test_up_head_ip_submit_and_down_as_json(make_cluster, cli, tmp_path):
    cluster = make_cluster("json")
    up = cli("up", cluster.config, "--yes", "--json")
    assert up.code == 0, up.text
    result = json.loads(up.out)
    assert result["cluster_name"] == cluster.name and result["provider"] == "local"
    assert result["changed"] is True and result["failed"] == []
    assert result["workers"] == 1 and len(result["created"]) == 2
    assert sorted(result["outcomes"].values()) == ["started", "started"]
    assert result["autoscaler"] == "started" and result["autoscaler_note"] is None
    status = cluster.status(cli)
    assert result["head_ip"] == status["head_ip"]
    assert sorted(result["outcomes"]) == sorted(n["id"] for n in status["nodes"])

    again = json.loads(cli("up", cluster.config, "--json").out)
    assert again["changed"] is False and again["created"] == []
    assert set(again["outcomes"].values()) == {"unchanged"}
    text = cli("up", cluster.config)
    assert f"head {again['head_ip']} + 1 worker)" in text.out and "nothing changed" in text.out

    head = json.loads(cli("get-head-ip", cluster.config, "--json").out)
    assert head == {
        "cluster_name": cluster.name,
        "head_id": next(n["id"] for n in status["nodes"] if n["kind"] == "head"),
        "head_ip": status["head_ip"],
    }
    assert cli("get-head-ip", cluster.config).out.strip() == head["head_ip"]

    script = tmp_path / "job.py"
    script.write_text(JOB)
    submitted = cli("submit", cluster.config, "--detach", "--json", script)
    assert submitted.code == 0, submitted.text
    job = json.loads(submitted.out)
    assert job["cluster_name"] == cluster.name and job["job_id"].startswith("job-")
    logs = cli("logs", cluster.config, job["job_id"], "--follow")
    assert logs.code == 0 and "from the job" in logs.out
    refused = cli("submit", cluster.config, "--json", script)
    assert refused.code == 2 and "--json goes with --detach" in refused.err

    down = cli("down", cluster.config, "--yes", "--json")
    assert down.code == 0, down.text
    removed = json.loads(down.out)
    assert removed["kept_head"] is False
    assert sorted(removed["removed"]) == sorted(n["id"] for n in status["nodes"])
    nothing = json.loads(cli("down", cluster.config, "--yes", "--json").out)
    assert nothing["removed"] == []
