"""Values with shell syntax in them reach nodes literally, on a real local cluster: a node
type name, a file mount target, and a `ray start` argument (a resource name) holding
`$(...)`, backquotes, `;`, quotes and spaces; start commands that use the documented
`eval "... $RAYCTL_RAY_START_ARGS"` form; and a start command line equal to the terminator
of the heredoc that once carried the start script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rayctl.paths import ray_token_file
from rayctl.runtime.ray_adapter import list_ray_nodes

pytestmark = pytest.mark.integration


def test_hostile_values_arrive_byte_for_byte(make_cluster, cli, rayctl_home, tmp_path):
    marker = tmp_path / "side-effect"
    hostile = f"""a b;$(touch {marker})`touch {marker}`'"|&[bold]"""
    source = tmp_path / "source"
    source.mkdir()
    (source / "payload.txt").write_text("payload")
    ray = Path(sys.executable).parent / "ray"
    worker_type = f"worker {hostile}"
    cluster = make_cluster(
        "hostile",
        available_node_types={
            "ray.head.default": {"resources": {"CPU": 1}},
            worker_type: {"resources": {"CPU": 1, hostile: 2}, "min_workers": 1},
        },
        file_mounts={f"~/mount {hostile}": str(source)},
        worker_start_ray_commands=[
            # Once the start script went through a heredoc ending at this line.
            "cat > /dev/null <<'RAYCTL_DETACHED_SCRIPT'\nRAYCTL_DETACHED_SCRIPT",
            f'eval "exec {ray} start --block --address=$RAYCTL_GCS_ADDRESS '
            '--disable-usage-stats $RAYCTL_RAY_START_ARGS"',
        ],
    )
    up = cli("up", cluster.config, "--yes")
    assert up.code == 0, up.text
    status = cluster.status(cli)
    worker = next(n for n in status["nodes"] if n["kind"] == "worker")
    assert worker["node_type"] == worker_type and worker["stage"] == "ready"
    ray_worker = next(
        r
        for r in list_ray_nodes(
            status["gcs_address"], token_file=ray_token_file(rayctl_home, cluster.name)
        )
        if r.instance_id == worker["id"]
    )
    # Through $RAYCTL_RAY_START_ARGS and eval, the --resources argument stayed one word.
    assert ray_worker.total[hostile] == 2.0 and ray_worker.node_type == worker_type
    node_home = rayctl_home / "clusters" / cluster.name / "nodes" / worker["id"]
    assert (node_home / f"mount {hostile}" / "payload.txt").read_text() == "payload"
    assert not marker.exists()
