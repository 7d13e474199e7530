"""`rayctl status` shows what the monitor reports: a worker it cannot terminate, backoffs,
demand it cannot place."""

from __future__ import annotations

import pytest

from rayctl.autoscaler.status import AutoscalerStatus, Backoff, Infeasible, Retry
from rayctl.cli import status as status_cli
from rayctl.ops.status import ClusterStatus


def test_the_autoscaler_section_names_stuck_terminations_backoffs_and_infeasible_demand(
    capsys: pytest.CaptureFixture[str],
):
    report = ClusterStatus(
        cluster_name="c",
        head_ip="127.0.0.2",
        gcs_address="127.0.0.2:6379",
        dashboard_url=None,
        ray_reachable=True,
        ray_error=None,
        nodes=[],
        monitor_running=True,
        autoscaler=AutoscalerStatus(
            updated_at=100.0,
            infeasible=[Infeasible(bundle={"GPU": 1.0}, count=2, reason="no node type has GPU")],
            backoff={"gpu": Backoff(failures=3, until=200.0)},
            terminating={
                "w-1": Retry(attempts=2, next_at=110.0, reason="idle: 61 s", error="host down")
            },
        ),
    )
    status_cli._render_autoscaler(report)
    shown = capsys.readouterr().out
    assert "Autoscaler: running" in shown
    assert "cannot place 2 x {GPU: 1}: no node type has GPU" in shown
    assert "backing off gpu after 3 failed launch(es)" in shown
    assert "cannot terminate w-1 (idle: 61 s): host down; attempt 2, next in 10 s" in shown
