"""Helpers the benchmarks share (they run as scripts: `.venv/bin/python benchmarks/X.py`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


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
