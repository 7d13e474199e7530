"""Start, probe and stop the Ray process of one node through its CommandRunner.

Every node keeps `~/.rayctl/nodes/<node id>/` on its host: the start script, the PID of Ray's
session leader and Ray's own output. The same scripts serve local, SSH and cloud nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rayctl.runtime.runner import CommandResult, CommandRunner
from rayctl.templates import render

STOP_GRACE_S = 10.0
# A worker whose head (GCS) is gone has nothing to drain, and its Ray waits for the GCS on
# SIGTERM: measured 16 s to restart such a worker with the full grace.
ORPHAN_GRACE_S = 2.0


def start(
    runner: CommandRunner, node_id: str, commands: Sequence[str], env: Mapping[str, str]
) -> CommandResult:
    """Launch `commands` detached, in a new session whose leader records its PID."""
    script = render("start_node.sh.j2", node_id=node_id, commands=commands, env=env)
    return runner.run(script, timeout_s=30)


def is_alive(runner: CommandRunner, node_id: str) -> bool:
    return runner.run(render("node_alive.sh.j2", node_id=node_id), timeout_s=15).ok


def stop(runner: CommandRunner, node_id: str, *, grace_s: float = STOP_GRACE_S) -> CommandResult:
    """SIGTERM the node's Ray and give it `grace_s` to drain, then SIGTERM what is left of its
    process group, then SIGKILL. Idempotent."""
    script = render("stop_node.sh.j2", node_id=node_id, grace_s=grace_s)
    return runner.run(script, timeout_s=grace_s + 15)


def output_tail(runner: CommandRunner, node_id: str, lines: int = 30) -> str:
    result = runner.run(f'tail -n {lines} "$HOME/.rayctl/nodes/{node_id}/ray.log"', timeout_s=15)
    return result.tail
