"""`rayctl clusters`: the clusters this machine knows (recorded by `up`), as their providers
list them now."""

from __future__ import annotations

from pydantic import BaseModel
from rich.table import Table

from rayctl.cli.output import JSON_OPT, emit, home, out
from rayctl.ops.known import KnownCluster, list_clusters


class ClusterList(BaseModel):
    clusters: list[KnownCluster]


def clusters(json_output: bool = JSON_OPT) -> None:
    """List the clusters this machine knows: name, provider, nodes, head address, config.
    Each takes the place of CONFIG in down, status, attach, exec, submit and logs."""
    emit(ClusterList(clusters=list_clusters(home())), _render, as_json=json_output)


def _render(result: ClusterList) -> None:
    if not result.clusters:
        out.print("No clusters on this machine; `rayctl up CONFIG` creates one.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "provider", "nodes", "head", "config"):
        table.add_column(column)
    for c in result.clusters:
        nodes = str(c.nodes) if c.nodes is not None else f"? ({c.error})"
        table.add_row(c.name, c.provider, nodes, c.head_ip or "-", c.config)
    out.print(table)
