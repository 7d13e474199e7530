"""Where rayctl keeps its state on this machine. (Paths on nodes: rayctl.runtime.head_paths.)"""

from __future__ import annotations

import os
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
