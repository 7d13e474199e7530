"""Helpers the benchmarks share (they run as scripts: `.venv/bin/python benchmarks/X.py`)."""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the results (or JSON)."""
    print(message, file=sys.stderr, flush=True)


def wait_for(
    what: str, done: Callable[[], bool], timeout_s: float = 180.0, poll_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} took more than {timeout_s:g} s")
        time.sleep(poll_s)


class Interrupts:
    """SIGINT raises KeyboardInterrupt and SIGTERM SystemExit(143), so both unwind through
    the `finally` blocks that clean up; but a cleanup runs to its end: a signal that comes
    meanwhile takes effect once the outermost cleanup is done."""

    def __init__(self) -> None:
        self._cleaning = 0
        self._pending: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self._cleaning:
            self._pending = signum
        else:
            self._raise(signum)

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def cleanup(self) -> Iterator[None]:
        self._cleaning += 1
        try:
            yield
        finally:
            self._cleaning -= 1
        if not self._cleaning and self._pending is not None:
            signum, self._pending = self._pending, None
            self._raise(signum)


INTERRUPTS = Interrupts()


# The batch benchmarks' (aws, gcp, azure) workers' tags and their two sides: one call for
# the whole batch against one node per call.
BATCH_TAGS = {
    "rayctl-kind": "worker",
    "rayctl-launch-hash": "bench",
    "rayctl-status": "uninitialized",
    "rayctl-launch-request": "bench",
}


def batched(provider, nodes: int) -> None:
    workers = provider.create_nodes("worker", nodes, BATCH_TAGS)
    provider.terminate_nodes([w.id for w in workers])


def one_by_one(provider, nodes: int) -> None:
    workers = [provider.create_nodes("worker", 1, BATCH_TAGS)[0] for _ in range(nodes)]
    for worker in workers:
        provider.terminate_nodes([worker.id])


BATCH_SIDES = {"batched": batched, "one by one": one_by_one}


def run_batch_side(provider, side: str, nodes: int, calls: Callable[[], int]) -> tuple[float, int]:
    """Bootstrap `provider`, then run one side: its seconds and API calls (as `calls()`
    counts them). Exits when a node of the cluster is still listed afterwards."""
    provider.bootstrap()
    before = calls()
    started = time.perf_counter()
    BATCH_SIDES[side](provider, nodes)
    took = time.perf_counter() - started
    made = calls() - before
    left = provider.list_nodes()
    if left:
        raise SystemExit(f"{side}: {len(left)} node(s) still listed after termination")
    return took, made


def batch_rounds(
    run_side: Callable[[str], tuple[float, int]],
    sides: list[str],
    rounds: int,
    calls: str,
) -> dict[str, tuple[float, float]]:
    """Each side once a round (rounds alternate which goes first); `run_side(side)` gives
    (seconds, API calls). Returns each side's medians."""
    results: dict[str, list[tuple[float, int]]] = {side: [] for side in sides}
    for i in range(rounds):
        for side in sides if i % 2 == 0 else list(reversed(sides)):
            took, made = run_side(side)
            results[side].append((took, made))
            log(f"round {i + 1}/{rounds} {side}: {took:.2f} s, {made} {calls}")
    return {
        side: (statistics.median(t for t, _ in runs), statistics.median(c for _, c in runs))
        for side, runs in results.items()
    }


def print_batch(
    title: str, medians: dict[str, tuple[float, float]], nodes: int, calls: str, as_json: bool
) -> None:
    """The batched and one-by-one sides' medians side by side, and their ratio."""
    ratio = medians["one by one"][0] / medians["batched"][0]
    if as_json:
        print(json.dumps({"nodes": nodes, "medians": medians, "ratio": ratio}))
        return
    print(title + "\n")
    print(f"{'':14}{'seconds':>10}{calls:>12}")
    for side, (took, made) in medians.items():
        print(f"{side:14}{took:>9.2f}s{made:>12.0f}")
    print(f"\none by one / batched: {ratio:.1f}x the time")
