"""State files on this machine: replaced durably, and kept aside when found corrupt.

(The ssh pool's hosts.json on a head is written by its own stdlib-only copy of this:
rayctl/providers/ssh/pool.py runs there without rayctl.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash (even of the machine) leaves the old
    content or the new, never an empty or partial file: write a temp file, fsync it,
    rename it over `path`, then fsync the directory so the rename itself is on disk."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keep_copy(path: Path) -> Path:
    """Copy a state file found corrupt beside it (named by its content, so reading it again
    adds no second copy) before anything may replace it; returns the copy's path."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    copy = path.with_name(f"{path.name}.corrupt-{digest}")
    if not copy.exists():
        shutil.copy2(path, copy)
    return copy
