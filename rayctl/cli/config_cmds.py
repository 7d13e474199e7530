"""`rayctl validate` and `rayctl schema`."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from rayctl.cli.output import CONFIG_FILE_ARG, JSON_OPT, emit, err, load_file, out
from rayctl.providers.registry import cluster_model


class WorkerType(BaseModel):
    name: str
    min_workers: int
    max_workers: int


class ValidateResult(BaseModel):
    file: str
    cluster_name: str
    provider: str
    head_node_type: str
    worker_types: list[WorkerType]
    max_workers: int
    warnings: list[str] = []  # valid, but worth knowing (FILE:LINE:COL: key: message)
    unsupported: list[str] = []  # valid Ray config that `up` refuses until rayctl has it


def validate(config: Path = CONFIG_FILE_ARG, json_output: bool = JSON_OPT) -> None:
    """Check a cluster config; errors name FILE:LINE:COL and the key, exit code 2. Warnings
    (and what `up` would refuse as not supported yet) go to stderr; the config is valid."""
    loaded = load_file(config)
    c = loaded.config
    for line in [
        *loaded.warnings,
        *(f"{u} (not supported yet: `up` refuses it)" for u in loaded.unsupported),
    ]:
        err.print(f"warning: {line}", markup=False)
    result = ValidateResult(
        file=str(config),
        cluster_name=c.cluster_name,
        provider=c.provider.type,
        head_node_type=c.head_node_type,
        worker_types=[
            WorkerType(name=name, min_workers=t.min_workers, max_workers=c.type_max_workers(name))
            for name, t in c.worker_types().items()
        ],
        max_workers=c.max_workers,
        warnings=list(loaded.warnings),
        unsupported=list(loaded.unsupported),
    )
    emit(result, _render, as_json=json_output)


def _render(result: ValidateResult) -> None:
    workers = ", ".join(f"{t.name} ({t.min_workers}..{t.max_workers})" for t in result.worker_types)
    out.print(
        f"{result.file}: valid. Cluster '{result.cluster_name}' on {result.provider}: head "
        f"{result.head_node_type}, workers {workers or 'none'}, max_workers {result.max_workers}."
    )


def schema() -> None:
    """Print the JSON Schema of cluster configs (every registered provider), for editors."""
    out.print(json.dumps(cluster_model().model_json_schema(), indent=2))
