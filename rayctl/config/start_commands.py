"""Start commands as Ray's example configs write them, and what rayctl makes of them.

Ray's configs start Ray with `ray stop` and then `ray start ...` without --block, which
daemonizes. On hosts of their own rayctl keeps tracking the Ray such commands leave running
(templates/track_ray.sh.j2). On the local provider nodes are processes of this machine: there
`ray stop` would stop every Ray on it and a daemonized Ray has no PID of its node's own, so
both are refused. Ray's head commands carry `--autoscaling-config=...` and no `--no-monitor`,
which would start Ray's autoscaler beside rayctl's: rayctl runs them with `--no-monitor` and
without `--autoscaling-config`, and says so. Commands are read as written (flags as words of
the command line), not evaluated.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rayctl.config.findings import Findings
    from rayctl.config.schema import ClusterConfig

# `ray` as a command word (also `/path/to/ray`), not inside another word.
_RAY_STOP = re.compile(r"(?<![^\s;&|(/])ray\s+stop(?!\S)")
_RAY_START = re.compile(r"(?<![^\s;&|(/])ray\s+start(?!\S)")
_AUTOSCALING_CONFIG = re.compile(r"\s+--autoscaling-config(?:=\S*|\s+\S+)")
_PORT = re.compile(r"(?<!\S)--port(?:=|\s+)(\d+)(?!\S)")


def _flag(command: str, flag: str) -> bool:
    return re.search(rf"(?<!\S){re.escape(flag)}(?!\S)", command) is not None


def starts_ray(command: str) -> bool:
    return _RAY_START.search(command) is not None


def _starts_head(command: str) -> bool:
    return starts_ray(command) and _flag(command, "--head")


def only_rayctl_autoscales(command: str) -> str:
    """A head start command that runs no autoscaler of Ray's: without `--autoscaling-config`
    and with `--no-monitor` (added right after `ray start`). Other commands are unchanged."""
    if not _starts_head(command):
        return command
    command = _AUTOSCALING_CONFIG.sub("", command)
    if _flag(command, "--no-monitor"):
        return command
    start = _RAY_START.search(command)
    assert start is not None  # _starts_head found it, and removing a flag keeps it
    return f"{command[: start.end()]} --no-monitor{command[start.end() :]}"


def gcs_port(commands: list[str]) -> int | None:
    """The GCS port a head's start commands choose (`ray start --head --port=N`), if any."""
    for command in commands:
        if _starts_head(command) and (port := _PORT.search(command)):
            return int(port.group(1))
    return None


def check(config: ClusterConfig, *, shares_machine: bool, found: Findings) -> None:
    """Problems (local provider: `ray stop`, `ray start` without --block) and warnings (head
    commands rayctl changes so that it is the only autoscaler) of the start commands."""
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for index, command in enumerate(getattr(config, key)):
            where = (key, index)
            if shares_machine and _RAY_STOP.search(command):
                found.problems.append(
                    (
                        where,
                        "'ray stop' would stop every Ray process on this machine (local nodes "
                        "are processes of it): remove it; rayctl stops each local node by PID",
                    )
                )
            if shares_machine and starts_ray(command) and not _flag(command, "--block"):
                found.problems.append(
                    (
                        where,
                        "`ray start` without --block leaves Ray running in the background, "
                        "where rayctl cannot tell this node's Ray from other local nodes': "
                        "add --block (e.g. `exec ray start --block ...`), as a local node is "
                        "the process of its `ray start --block`",
                    )
                )
            if only_rayctl_autoscales(command) != command:
                found.warnings.append(
                    (
                        where,
                        "rayctl's monitor is the cluster's only autoscaler: this `ray start "
                        "--head` runs with --no-monitor and without --autoscaling-config",
                    )
                )
