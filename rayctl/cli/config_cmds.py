"""`rayctl validate` and `rayctl schema`."""

from __future__ import annotations

import json
from pathlib import Path

from rayctl.cli.output import CONFIG_ARG, load, out
from rayctl.config import ClusterConfig


def validate(config: Path = CONFIG_ARG) -> None:
    """Check a cluster config; errors name FILE:LINE:COL and the key, exit code 2."""
    c = load(config).config
    workers = ", ".join(
        f"{name} ({t.min_workers}..{c.type_max_workers(name)})"
        for name, t in c.worker_types().items()
    )
    out.print(
        f"{config}: valid. Cluster '{c.cluster_name}' on {c.provider.type}: head "
        f"{c.head_node_type}, workers {workers or 'none'}, max_workers {c.max_workers}."
    )


def schema() -> None:
    """Print the JSON Schema of cluster configs, for editors."""
    out.print(json.dumps(ClusterConfig.model_json_schema(), indent=2), markup=False)
