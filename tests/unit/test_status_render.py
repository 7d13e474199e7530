"""`rayctl status` shows what the monitor reports (a worker it cannot terminate, backoffs,
demand it cannot place), whether it runs at all, and every node type it may launch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rayctl.autoscaler.status import (
    AutoscalerStatus,
    AutostopStatus,
    Backoff,
    BundleCount,
    Infeasible,
    Retry,
)
from rayctl.cli import status as status_cli
from rayctl.cli.output import emit
from rayctl.ops import status as status_op
from rayctl.ops.status import ClusterStatus, NodeRow, NodeTypeRow
from rayctl.providers.base import Node, NodeKind, NodeState, Tag
from rayctl.providers.registry import load_config

HINT = "autoscaler: off: nothing adds, replaces or removes workers; `rayctl up c.yaml -n c` ..."


def report(**fields: object) -> ClusterStatus:
    defaults: dict[str, object] = dict(
        cluster_name="c",
        head_ip="127.0.0.2",
        gcs_address="127.0.0.2:6379",
        dashboard_url=None,
        ray_reachable=True,
        ray_error=None,
        nodes=[],
        node_types=[],
        max_workers=4,
        monitor_running=True,
        autoscaler_hint=None,
        autoscaler=None,
    )
    return ClusterStatus(**(defaults | fields))


def test_the_autoscaler_section_names_stuck_terminations_backoffs_and_infeasible_demand(
    capsys: pytest.CaptureFixture[str],
):
    shown_report = report(
        autoscaler=AutoscalerStatus(
            updated_at=100.0,
            infeasible=[Infeasible(bundle={"GPU": 1.0}, count=2, reason="no node type has GPU")],
            backoff={"gpu": Backoff(failures=3, until=200.0)},
            terminating={
                "w-1": Retry(attempts=2, next_at=110.0, reason="idle: 61 s", error="host down")
            },
        ),
    )
    status_cli._render_autoscaler(shown_report)
    shown = capsys.readouterr().out
    assert "autoscaler: running" in shown
    assert "cannot place 2 x {GPU: 1}: no node type has GPU" in shown
    assert "backing off gpu after 3 failed launch(es)" in shown
    assert "cannot terminate w-1 (idle: 61 s): host down; attempt 2, next in 10 s" in shown


def test_a_stopped_autoscaler_is_shown_off_with_how_to_start_it_and_its_demand_as_stale(
    capsys: pytest.CaptureFixture[str],
):
    stopped = report(
        monitor_running=False,
        autoscaler_hint=HINT,
        autoscaler=AutoscalerStatus(updated_at=1.0, demands=[]),
    )
    status_cli._render_autoscaler(stopped)
    lines = capsys.readouterr().out.splitlines()
    assert HINT in lines
    assert "autoscaler: running" not in "\n".join(lines)
    # "pending demand: none" is what it saw before it stopped, not what is pending now
    said = lines.index("  as of its last report, before it stopped:")
    assert lines[said + 1] == "  pending demand: none"


def test_running_autoscaler_reports_demand_as_current(capsys: pytest.CaptureFixture[str]):
    running = report(
        autoscaler=AutoscalerStatus(
            updated_at=1.0, demands=[BundleCount(bundle={"CPU": 1.0}, count=3)]
        )
    )
    status_cli._render_autoscaler(running)
    shown = capsys.readouterr().out
    assert "before it stopped" not in shown
    assert "pending demand: 3 x {CPU: 1}" in shown


def test_every_node_type_is_listed_with_its_limits_under_the_json_names(
    capsys: pytest.CaptureFixture[str],
):
    types = [
        NodeTypeRow(node_type="head", head=True, workers=0, min_workers=0, max_workers=0),
        NodeTypeRow(node_type="cpu", head=False, workers=2, min_workers=1, max_workers=4),
        NodeTypeRow(node_type="gpu", head=False, workers=0, min_workers=0, max_workers=3),
    ]
    status_cli._render_node_types(report(node_types=types, max_workers=5))
    lines = capsys.readouterr().out.splitlines()
    assert "node_types (max_workers 5 in all):" in lines
    header = next(line.split() for line in lines if line.startswith("node_type "))
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("cpu", "gpu"))}
    assert rows["gpu"] == ["gpu", "0", "0", "3"]  # no nodes, still shown with its limits
    assert rows["cpu"] == ["cpu", "2", "1", "4"]

    emit(report(node_types=types), lambda r: None, as_json=True)
    as_json = json.loads(capsys.readouterr().out)
    assert header == list(as_json["node_types"][0])  # the table's columns are the JSON's names
    assert as_json["node_types"][2] == {
        "node_type": "gpu",
        "head": False,
        "workers": 0,
        "min_workers": 0,
        "max_workers": 3,
    }


def test_a_nodes_resources_show_its_memory_and_object_store_in_gib():
    gib = 1024**3
    row = NodeRow(
        id="n",
        node_type="t",
        kind="worker",
        state="running",
        stage="ready",
        ip="127.0.0.3",
        ray="IDLE",
        resources={"CPU": 2, "memory": 3.5 * gib, "object_store_memory": 1.5 * gib},
        used={"CPU": 1, "memory": gib},
        idle_s=None,
        error=None,
    )
    assert status_cli._resources(row) == "CPU 1/2, mem 1.0/3.5G, obj 0.0/1.5G"


def test_autostop_shows_its_settings_and_the_time_left_now(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    head = Node("head-1", "h", NodeKind.HEAD, NodeState.RUNNING, "127.0.0.2", None, {})
    counting = AutostopStatus(
        idle_minutes=0.5, down=True, idle_s=10.0, left_s=20.0, busy=None, stopped_at=None
    )
    document = AutoscalerStatus(updated_at=1000.0, autostop=counting)
    monkeypatch.setattr(status_op.time, "time", lambda: 1005.0)  # 5 s after the monitor wrote
    view = status_op._autostop(head, document, running=True)
    assert view is not None and (view.idle_s, view.left_s) == (15.0, 15.0)
    status_cli._render_autostop(report(autostop=view))
    shown = capsys.readouterr().out
    assert "autostop: remove the cluster after 0.5 min idle" in shown
    assert "idle for 15 s: stops in 15 s" in shown

    busy = counting.model_copy(update={"idle_s": None, "left_s": None, "busy": "1 driver(s)"})
    view = status_op._autostop(head, AutoscalerStatus(updated_at=1.0, autostop=busy), running=True)
    status_cli._render_autostop(report(autostop=view))
    assert "not idle: 1 driver(s)" in capsys.readouterr().out

    stopped_head = Node(**{**head.__dict__, "tags": {Tag.AUTOSTOPPED: "1000"}})
    view = status_op._autostop(stopped_head, document, running=False)
    assert view is not None and view.stopped_at == 1000.0 and view.left_s == 20.0
    status_cli._render_autostop(report(autostop=view))
    assert "`rayctl up` starts it again" in capsys.readouterr().out
    assert status_op._autostop(head, AutoscalerStatus(updated_at=1.0), running=True) is None


def test_a_stopped_head_shows_autostop_from_its_tag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    """The head's status document cannot be read while its machine is stopped: the tag says
    when, the config the timeout when it has one (`up --autostop` may have given it)."""
    path = tmp_path / "c.yaml"
    path.write_text("cluster_name: c\nprovider: {type: local}\n")
    plain = load_config(path).config
    head = Node("head-1", "h", NodeKind.HEAD, NodeState.STOPPED, "10.0.0.2", None, {})
    assert status_op._autostopped(head, plain) is None  # stopped, but not by autostop
    stopped = Node(**{**head.__dict__, "tags": {Tag.AUTOSTOPPED: "1000"}})
    view = status_op._autostopped(stopped, plain)
    assert view is not None and (view.stopped_at, view.idle_minutes, view.down) == (
        1000.0,
        None,
        False,
    )
    status_cli._render_autostop(report(autostop=view))
    shown = capsys.readouterr().out
    assert "autostop: stop its nodes\n" in shown and "`rayctl up` starts it again" in shown
    path.write_text(path.read_text() + "rayctl: {autostop: {idle_minutes: 0.5}}\n")
    view = status_op._autostopped(stopped, load_config(path).config)
    assert view is not None and view.idle_minutes == 0.5
