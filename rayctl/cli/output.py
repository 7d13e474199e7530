"""The CLI's one output layer: results go to stdout, progress and errors to stderr. A command
that prints a result builds one pydantic model of it and hands it to `emit`, which prints it
as JSON (`--json`) or through the command's renderer, so both forms carry the same facts."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rayctl.config.loader import LoadedConfig
from rayctl.ops import known
from rayctl.ops.down import DownStage
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


@dataclass
class _Row:
    node: Node
    stage: str
    began: float  # when the node's first stage was reported
    ended: float | None  # when it reached a final stage


class NodeProgress:
    """Live per-node progress of `up` and `down`. On a terminal: a header with the total
    elapsed time over one row per node (node type, stage, its own elapsed time), redrawn in
    place and left on screen in its final state. Elsewhere (pipes, CI logs): one line per
    change. Called from worker threads."""

    FINAL = frozenset({"ready", "failed", "terminated", "may-remain", "kept"})

    def __init__(self, title: str) -> None:
        self._title = title  # what is under way: "Taking down cluster c"
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._rows: dict[str, _Row] = {}
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if err.is_terminal:
            self._live = Live(console=err, get_renderable=self._view, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(None, None, None)  # draws the final state once more

    def expect(self, nodes: list[Node]) -> None:
        """Rows for nodes known to come, `waiting` until their first stage (no lines)."""
        with self._lock:
            now = time.monotonic()
            for node in nodes:
                self._rows.setdefault(node.id, _Row(node, "waiting", now, None))

    def show(self, node: Node, stage: str) -> None:
        """`node` is in `stage` now (repeats of the same stage are ignored)."""
        with self._lock:
            self._show(node, stage, time.monotonic())

    def _show(self, node: Node, stage: str, at: float) -> None:
        row = self._rows.get(node.id)
        if row is not None and row.stage == stage:
            return
        if row is None:
            row = self._rows[node.id] = _Row(node, stage, at, None)
        row.stage = stage
        row.ended = at if stage in self.FINAL else None
        if not self._live:
            self._line(node, stage, at)

    def _line(self, node: Node, stage: str, at: float) -> None:
        err.print(
            f"[{at - self._start:5.1f}s] {node.id} ({node.kind.value}, {node.node_type}): {stage}"
        )

    def _view(self) -> Group:
        now = time.monotonic()
        rows = list(self._rows.values())
        done = sum(row.ended is not None for row in rows)
        header = styled(
            (self._title, "bold"),
            f": {done}/{len(rows)} node{'s' * (len(rows) != 1)} done, "
            f"{now - self._start:.1f} s elapsed",
        )
        table = Table(box=None, pad_edge=False)
        for column in ("id", "kind", "node_type", "ip", "stage", "elapsed"):
            table.add_column(column)
        for row in rows:
            style = {"ready": "green", "terminated": "green", "failed": "red"}.get(
                row.stage, "yellow"
            )
            table.add_row(
                row.node.id,
                row.node.kind.value,
                row.node.node_type,
                row.node.internal_ip,
                Text(row.stage, style=style),
                f"{(row.ended or now) - row.began:.1f}s",
            )
        return Group(header, table)


class UpProgress(NodeProgress):
    """`up`'s bootstrap stages. A node that was ready is probed first; in plain lines that
    probe is worth a line only when more than that follows, so an unchanged `up` prints no
    line for it."""

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self._probing: dict[str, tuple[str, float]] = {}  # ready nodes being probed: since

    def __call__(self, node: Node, change: StageChange) -> None:
        stage = change.stage.value
        with self._lock:
            now = time.monotonic()
            if not self._live:
                probe = self._probing.get(node.id)
                if probe is None and node.id not in self._rows and node.status is NodeStatus.READY:
                    self._probing[node.id] = (stage, now)
                    return
                if probe is not None:
                    if stage in (probe[0], NodeStatus.READY.value):
                        return
                    del self._probing[node.id]
                    self._show(node, *probe)
            self._show(node, stage, now)


class DownProgress(NodeProgress):
    """`down`'s stages (rayctl.ops.down.DownStage)."""

    def __call__(self, node: Node, stage: DownStage) -> None:
        self.show(node, stage.value)


class ClientLost(Exception):
    """rayctl itself was told to end (SIGTERM, SIGHUP) or lost its stdout (SIGPIPE); what
    runs on the cluster is not affected."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def client_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ClientLost inside (Ctrl-C raises KeyboardInterrupt
    already), so a command that waits (a followed job, a held tunnel) can end cleanly and
    say what it leaves behind."""

    def lost(signum: int, _frame: object) -> None:
        raise ClientLost(signum)

    previous = {s: signal.signal(s, lost) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
