"""Machine-wide leases of loopback addresses, one per local node.

Ray rewrites 127.0.0.1 and `localhost` to the machine's outward address but keeps any other
127.x address, so each local node gets its own: 127.0.0.2, .3, ... A lease is a file created
with O_EXCL (atomic without a lock) that names the node's directory; it is stale once that
directory is gone, so a crash never leaks an address for good.
"""

from __future__ import annotations

import os
from pathlib import Path

LEASE_DIR = Path(os.environ.get("RAYCTL_LOOPBACK_LEASES", "/tmp/rayctl-loopback-leases"))


def _addresses():
    for third in range(256):
        for fourth in range(2 if third == 0 else 1, 255):
            yield f"127.0.{third}.{fourth}"


def lease(owner_dir: Path) -> str:
    """Lease a free loopback address for the node living in `owner_dir` (which must exist)."""
    LEASE_DIR.mkdir(parents=True, exist_ok=True)
    for address in _addresses():
        path = LEASE_DIR / address
        for _attempt in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if _is_stale(path):
                    path.unlink(missing_ok=True)
                    continue
                break
            with os.fdopen(fd, "w") as f:
                f.write(str(owner_dir))
            return address
    raise RuntimeError(f"no free loopback address left (leases in {LEASE_DIR})")


def release(address: str, owner_dir: Path) -> None:
    """Give `address` back, if `owner_dir` still holds it."""
    path = LEASE_DIR / address
    try:
        if path.read_text() == str(owner_dir):
            path.unlink()
    except FileNotFoundError:
        pass


def _is_stale(path: Path) -> bool:
    try:
        owner = path.read_text()
    except FileNotFoundError:
        return True
    return bool(owner) and not Path(owner).is_dir()
