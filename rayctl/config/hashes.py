"""Hashes stored as node tags so `up` can tell what changed and skip the rest.

- launch hash: what decides the machine itself (node_config, auth). A change replaces the node.
- runtime hash: what setup produces (file mounts and their contents, setup commands, the
  runtime: rayctl's version and source hash, Ray's version and extras, the extra packages).
  A change re-runs setup on the node, which installs a changed rayctl or packages there.
- start hash: how Ray is started (start commands, resources, labels, token authentication on
  or off). A change restarts Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rayctl.config.schema import ClusterConfig


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _path_digest(path: str) -> str:
    """Content hash of a file (its bytes) or a directory tree (relative names and bytes).
    Never the path itself: the head's monitor computes the same hashes from its own copies."""
    h = hashlib.sha256()
    root = Path(path)
    if root.is_file():
        h.update(root.read_bytes())
    for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        h.update(str(file.relative_to(root)).encode())
        h.update(file.read_bytes())
    return h.hexdigest()[:16]


def launch_hash(config: ClusterConfig, node_type: str) -> str:
    auth = config.auth.model_dump()
    key = config.auth.ssh_private_key
    if key and os.path.exists(os.path.expanduser(key)):
        # The key's content, not where it lies: the head's copy is elsewhere.
        auth["ssh_private_key"] = _path_digest(os.path.expanduser(key))
    return _digest(
        {"node_config": config.available_node_types[node_type].node_config, "auth": auth}
    )


def runtime_hash(config: ClusterConfig, node_type: str, *, head: bool, runtime: str) -> str:
    """`runtime` names the rayctl and Ray a node gets (rayctl.runtime.install's identity)."""
    return _digest(
        {
            "file_mounts": {
                remote: _path_digest(local) for remote, local in config.file_mounts.items()
            },
            "cluster_synced_files": config.cluster_synced_files,
            "initialization_commands": config.initialization_commands,
            "setup_commands": config.setup_commands_for(node_type, head=head),
            "runtime": runtime,
            "python": config.rayctl.runtime.python,
            "ray_extras": sorted(set(config.rayctl.runtime.ray_extras)),
            "packages": config.rayctl.runtime.packages,
        }
    )


def start_hash(config: ClusterConfig, node_type: str, *, head: bool) -> str:
    node = config.available_node_types[node_type]
    commands = config.head_start_ray_commands if head else config.worker_start_ray_commands
    return _digest(
        {
            "commands": commands,
            "resources": node.resources,
            "labels": node.labels,
            "ray_token_auth": config.rayctl.security.ray_token_auth,
        }
    )
