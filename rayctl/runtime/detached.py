"""Detached processes on a node (a node's Ray, the autoscaler's monitor), started, probed and
stopped through the node's CommandRunner.

Each has a slot `~/.rayctl/procs/<slot>/` on its host: the start script and its environment
(env.sh, mode 0600), the PID of its session leader, and its output. The same scripts serve
local, SSH and cloud nodes.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from rayctl.runtime import head_paths
from rayctl.runtime.runner import CommandResult, CommandRunner
from rayctl.templates import render, shell_path

STOP_GRACE_S = 10.0
# A worker whose head (GCS) is gone has nothing to drain, and its Ray waits for the GCS on
# SIGTERM: measured 16 s to restart such a worker with the full grace.
ORPHAN_GRACE_S = 2.0


def slot_dir(slot: str) -> str:
    return head_paths.procs_dir(slot)


def start(
    runner: CommandRunner, slot: str, commands: Sequence[str], env: Mapping[str, str]
) -> CommandResult:
    """Launch `commands` detached, in a new session whose leader records its PID."""
    script = render(
        "start_detached.sh.j2", slot=slot, dir=slot_dir(slot), commands=commands, env=env
    )
    return runner.run(script, timeout_s=30)


def restart(runner: CommandRunner, slot: str) -> CommandResult:
    """Start the slot's process again with the script and environment of its last start,
    unless it runs. Fails (exit 3) when the slot never held a process."""
    return runner.run(render("restart_detached.sh.j2", slot=slot, dir=slot_dir(slot)), timeout_s=30)


def is_alive(runner: CommandRunner, slot: str) -> bool:
    return runner.run(
        render("detached_alive.sh.j2", slot=slot, dir=slot_dir(slot)), timeout_s=15
    ).ok


def _stop_script(slot: str, grace_s: float) -> str:
    return render("stop_detached.sh.j2", slot=slot, dir=slot_dir(slot), grace_s=grace_s)


def stop(runner: CommandRunner, slot: str, *, grace_s: float = STOP_GRACE_S) -> CommandResult:
    """SIGTERM the process and give it `grace_s` to finish, then SIGTERM what is left of its
    process group, then SIGKILL. Idempotent."""
    return runner.run(_stop_script(slot, grace_s), timeout_s=grace_s + 15)


def stop_then(runner: CommandRunner, slot: str, then: str, *, grace_s: float) -> CommandResult:
    """Launch on the node, in a session of its own, a last step that stops the slot's process
    as `stop` does and then runs the shell command `then`; returns once it is launched. For a
    process whose remains (`then` removes them) must outlive it: the slot's process launches
    this itself, ends, and the step goes on without it. The step keeps no file and no output."""
    step = f"bash -c {shlex.quote(_stop_script(slot, grace_s))}; {then}"
    return runner.run(
        f"nohup setsid bash -c {shlex.quote(step)} >/dev/null 2>&1 </dev/null &", timeout_s=30
    )


def output_tail(runner: CommandRunner, slot: str, lines: int = 30) -> str:
    return runner.run(f"tail -n {lines} {shell_path(slot_dir(slot))}/out.log", timeout_s=15).tail
