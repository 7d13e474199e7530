"""Where rayctl keeps its state on this machine, and how state files are written: replaced
durably, and kept aside when found corrupt. (Paths on nodes: rayctl.runtime.head_paths; the
ssh pool's hosts.json on a head is written by its own stdlib-only copy of write_atomic, since
rayctl/providers/ssh/pool.py runs there without rayctl.)"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def rayctl_home() -> Path:
    """RAYCTL_HOME, or ~/.rayctl (on a head, the directory runtime.head_paths calls
    RAYCTL_DIR, where its monitor finds keys). Created by the commands that write to it."""
    return Path(os.environ.get("RAYCTL_HOME") or Path.home() / ".rayctl").resolve()


def cluster_dir(home: Path, cluster_name: str) -> Path:
    """A cluster's own state: local nodes' records and homes, pinned host keys."""
    return home / "clusters" / cluster_name


def log_dir(home: Path, cluster_name: str) -> Path:
    """Nodes' setup logs."""
    return home / "logs" / cluster_name


def key_file(home: Path, key_name: str) -> Path:
    """A private key rayctl created for a cloud key pair."""
    return home / "keys" / f"{key_name}.pem"


def ray_token_file(home: Path, cluster_name: str) -> Path:
    """The cluster's Ray authentication token (mode 0600), made by its first `up`."""
    return cluster_dir(home, cluster_name) / "ray_auth_token"


def write_atomic(path: Path, text: str, *, mode: int = 0o666) -> None:
    """Replace `path` with `text` so that a crash (even of the machine) leaves the old
    content or the new, never an empty or partial file: write a temp file, fsync it,
    rename it over `path`, then fsync the directory so the rename itself is on disk.
    The file is created with `mode` (less the umask), so a secret (0o600) is never
    readable by others, not even while it is written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover keeps its own mode; O_CREAT would not set ours
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as f:
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
