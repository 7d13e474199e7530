"""Helpers the benchmarks share (they run as scripts: `.venv/bin/python benchmarks/X.py`)."""

from __future__ import annotations

import contextlib
import signal
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
