"""`rayctl plan`: the scheduler's decision for a config and a demand file, as JSON or a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

CONFIG = {
    "cluster_name": "plan",
    "max_workers": 10,
    "idle_timeout_minutes": 5,
    "provider": {"type": "local"},
    "available_node_types": {
        "head": {"resources": {"CPU": 1}},
        "cpu": {"resources": {"CPU": 4}, "max_workers": 6},
        "p2.8xlarge": {"resources": {"CPU": 32, "GPU": 8}, "max_workers": 2},
    },
    "head_node_type": "head",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_the_issue_example_as_json(cli, config: Path, tmp_path: Path):
    demand = tmp_path / "demand.json"
    demand.write_text(
        json.dumps(
            {
                # One GPU node with all 8 GPUs free, idle for 10 minutes.
                "nodes": [
                    {
                        "id": "n1",
                        "type": "p2.8xlarge",
                        "kind": "worker",
                        "state": "running",
                        "available": {"GPU": 8},
                        "idle_s": 600,
                    }
                ],
                "demands": [{"bundle": {"GPU": 1}, "count": 6}],
                "placement_groups": [
                    {"strategy": "STRICT_SPREAD", "bundles": [{"GPU": 1}, {"GPU": 1}]}
                ],
                "constraints": [{"bundle": {"CPU": 1}, "count": 100}],
            }
        )
    )
    result = cli("plan", config, "--demand", demand, "--json")
    assert result.code == 0, result.text
    decision = json.loads(result.out)
    # Constraint: 100 CPUs of total capacity; n1 holds 32, so 68 more. Cheapest per CPU:
    # cpu (4 CPUs, capacity 4/32 = 0.125, 0.03125 per CPU) vs p2.8xlarge (2.0 for 32 CPUs,
    # 0.0625 per CPU): 6 cpu nodes (max_workers 6) hold 24, p2.8xlarge's last slot 32,
    # leaving 12 CPUs without room.
    # STRICT_SPREAD: one GPU on n1, one on the new p2.8xlarge. GPU demand 6: n1's 7 left.
    assert decision["launch"] == {"cpu": 6, "p2.8xlarge": 1}
    assert decision["terminate"] == []  # n1 is idle but demand and constraints use it
    assert decision["infeasible"] == [
        {
            "bundle": {"CPU": 1.0},
            "count": 12,
            "reason": "no room: the node types that fit are at their max_workers "
            "(cluster max_workers 10)",
        }
    ]


def test_idle_nodes_are_terminated_and_the_table_says_why(cli, config: Path, tmp_path: Path):
    demand = tmp_path / "demand.yaml"
    demand.write_text(
        "nodes:\n"
        "  - {id: h, type: head, kind: head, idle_s: 900}\n"
        "  - {id: w1, type: cpu, idle_s: 400}\n"
        "  - {id: w2, type: cpu, idle_s: 100}\n"
        "demands:\n"
        "  - {bundle: {TPU: 1}, count: 2}\n"
    )
    result = cli("plan", config, "--demand", demand)
    assert result.code == 0, result.text
    lines = [" ".join(line.split()) for line in result.out.splitlines()]
    assert "terminate w1 idle: 400 s, past its 300 s timeout" in lines  # w2 not yet
    assert not any(line.startswith("terminate h ") for line in lines)  # never the head
    assert "no node type has enough TPU" in result.out


def test_a_bad_demand_file_is_located_like_a_config_error(cli, config: Path, tmp_path: Path):
    demand = tmp_path / "demand.yaml"
    demand.write_text(
        "nodes:\n  - id: a\n    type: cpux\n"
        "demands:\n  - bundle: {CPU: 1}\n    cuont: 3\n"
        "placement_groups:\n  - strategy: STRICT_SPREDA\n    bundles: [{CPU: 1}]\n"
    )
    result = cli("plan", config, "--demand", demand)
    assert result.code == 2
    assert "Traceback" not in result.text
    errors = result.err.splitlines()
    assert any(":6:5: demands[0].cuont: unknown key; did you mean 'count'?" in e for e in errors)
    assert any(":8:5: placement_groups[0].strategy: input should be 'PACK'" in e for e in errors)
    assert len(errors) == 2  # the unknown node type is checked once the file parses
    demand.write_text("nodes:\n  - id: a\n    type: cpux\n")
    result = cli("plan", config, "--demand", demand)
    assert result.code == 2
    assert ":3:5: nodes[0].type: 'cpux' is not in the config's node types; did you mean 'cpu'?" in (
        result.err
    )


def test_the_table_and_the_json_carry_the_same_decisions(cli, config: Path, tmp_path: Path):
    demand = tmp_path / "demand.yaml"
    demand.write_text("demands: [{bundle: {CPU: 1}, count: 3}]\n")
    decision = json.loads(cli("plan", config, "--demand", demand, "--json").out)
    table = cli("plan", config, "--demand", demand).out
    assert decision["launches"], decision
    for launch in decision["launches"]:
        assert f"{launch['count']} x {launch['node_type']}" in table
        assert launch["reason"] in table
    assert sum(x["count"] for x in decision["launches"]) == sum(decision["launch"].values())
