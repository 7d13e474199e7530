"""A worker's lifecycle as the autoscaler sees it, and the moves allowed between phases.

Each tick derives every worker's phase afresh from the provider's tags, Ray's view and what
this monitor is doing (boots in flight, terminations to retry), so a restarted monitor finds
the same phases; the decide step then moves workers only along TRANSITIONS.

    launched -> booting -> ready -> terminating
        \\          |  \\      \\-> lost -> terminating
         \\         |   \\-> failed -> terminating
          \\-> terminating      (timed out, or no longer wanted)
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    LAUNCHED = "launched"  # created and tagged; no boot runs in this monitor
    BOOTING = "booting"  # a boot runs in this monitor
    READY = "ready"  # Ray lists it alive
    FAILED = "failed"  # its boot failed
    LOST = "lost"  # Ray reports it dead, or its Ray is gone, while the provider runs it
    TERMINATING = "terminating"  # termination asked for; retried until the provider confirms


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.LAUNCHED: frozenset({Phase.BOOTING, Phase.TERMINATING}),
    Phase.BOOTING: frozenset({Phase.TERMINATING}),  # ready / failed: when the boot ends
    Phase.READY: frozenset({Phase.TERMINATING}),
    Phase.FAILED: frozenset({Phase.TERMINATING}),
    Phase.LOST: frozenset({Phase.TERMINATING}),
    Phase.TERMINATING: frozenset({Phase.TERMINATING}),  # a retry
}


class TransitionError(AssertionError):
    """decide asked for a move the lifecycle does not allow: a bug, never a user error."""


def check_move(node_id: str, source: Phase, target: Phase) -> None:
    if target not in TRANSITIONS[source]:
        raise TransitionError(f"{node_id}: {source.value} -> {target.value} is not allowed")
