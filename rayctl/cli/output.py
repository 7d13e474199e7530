"""The CLI's one output layer: results go to stdout, progress and errors to stderr. A command
that prints a result builds one pydantic model of it and hands it to `emit`, which prints it
as JSON (`--json`) or through the command's renderer, so both forms carry the same facts."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rayctl.config.loader import LoadedConfig
from rayctl.ops import known
from rayctl.paths import rayctl_home
from rayctl.providers.base import Node, NodeStatus
from rayctl.providers.registry import load_config
from rayctl.runtime.bootstrap import StageChange

# Not a terminal (pipes, CI logs): no width to fit, so tables get room instead of wrapping.
# No markup: what is printed holds user text (node type names, remote output) in which
# `[bold]` or `[/x]` must show as written; colour comes from `styled` pieces instead.
out = Console(
    highlight=False, soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 160
)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (text, style) pairs, e.g. styled(("error:", "red"), " x")."""
    return Text.assemble(*parts)


CONFIG_FILE_ARG = typer.Argument(
    ..., help="Cluster config (Ray's cluster YAML).", show_default=False
)
CONFIG_ARG = typer.Argument(
    ...,
    metavar="CONFIG|NAME",
    help="Cluster config (Ray's cluster YAML), or the name of a cluster `rayctl clusters` lists.",
    show_default=False,
)
NAME_OPT = typer.Option(None, "--cluster-name", "-n", help="Override the config's cluster_name.")
JSON_OPT = typer.Option(False, "--json", help="Print the result as JSON, for scripts.")

Result = TypeVar("Result", bound=BaseModel)


def emit(result: Result, render: Callable[[Result], None], *, as_json: bool) -> None:
    """Print a command's result: its model as JSON, or as `render` shows it to a person."""
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        render(result)


def load_file(config: Path, cluster_name: str | None = None) -> LoadedConfig:
    """A config file (`up`, `validate`, `plan`)."""
    return load_config(config, cluster_name=cluster_name)


def load(
    config: Path, cluster_name: str | None = None, *, record_if_invalid: bool = False
) -> LoadedConfig:
    """The config of an existing cluster, from a file or by its name (rayctl.ops.known)."""
    loaded, note = known.open_cluster(
        config, cluster_name, rayctl_home(), record_if_invalid=record_if_invalid
    )
    if note:
        err.print(note)
    return loaded


def home() -> Path:
    return rayctl_home()


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask on a terminal; without one there is nobody to ask, and the command's intent stands."""
    if assume_yes or not sys.stdin.isatty():
        return True
    return typer.confirm(question, default=False)


class StageDisplay:
    """Live per-node bootstrap progress: a table on a terminal, one line per change elsewhere.
    Called from bootstrap threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._rows: dict[str, tuple[Node, NodeStatus, float]] = {}
        self._probing: dict[str, tuple[NodeStatus, float]] = {}  # ready nodes being probed
        self._live: Live | None = None

    def __enter__(self) -> StageDisplay:
        if err.is_terminal:
            self._live = Live(console=err, get_renderable=self._table, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(None, None, None)

    def __call__(self, node: Node, change: StageChange) -> None:
        stage = change.stage
        with self._lock:
            now = time.monotonic()
            previous = self._rows.get(node.id)
            if previous is not None and previous[1] is stage:
                return  # a step done within the stage: nothing new to show
            self._rows[node.id] = (node, stage, now)
            if self._live:
                return
            # A node that was ready is probed first; its probe is worth a line only when more
            # than that follows, so an unchanged `up` prints no line for it.
            if previous is None and node.status is NodeStatus.READY:
                self._probing[node.id] = (stage, now)
                return
            probe = self._probing.pop(node.id, None)
            if probe is not None:
                if stage is NodeStatus.READY:
                    return
                self._line(node, *probe)
            self._line(node, stage, now)

    def _line(self, node: Node, stage: NodeStatus, at: float) -> None:
        err.print(
            f"[{at - self._start:5.1f}s] {node.id} ({node.kind.value}, "
            f"{node.node_type}): {stage.value}"
        )

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("id", "kind", "node_type", "ip", "stage", "since"):
            table.add_column(column)
        now = time.monotonic()
        for node, stage, since in list(self._rows.values()):
            style = {"ready": "green", "failed": "red"}.get(stage.value, "yellow")
            table.add_row(
                node.id,
                node.kind.value,
                node.node_type,
                node.internal_ip,
                Text(stage.value, style=style),
                f"{now - since:4.1f}s" if stage.value not in ("ready", "failed") else "",
            )
        return table
