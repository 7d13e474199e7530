"""Which cluster holds an on-prem host: a claim file on the host itself, so two clusters
that list the same hosts (same user) never stop each other's Ray and monitor.

Like pool.py this runs on the host as a script of the standard library only:
`python3 -I -S -c <this source> DIR OP JSON` prints the result as JSON, DIR being the claims'
directory relative to the home (rayctl.runtime.head_paths.CLAIMS_DIR).

  claim {address, owner, about}    -> null, or exits HELD_EXIT printing the holder's claim
  release {address, owner, remove} -> null

A claim is `DIR/<address>` (named by address, so hosts that share one home over
NFS still hold one claim each), created with O_EXCL: of two clusters claiming at once one
wins. `owner` ({cluster, head}) says which cluster it is: its name and its head's address,
so two configs that only share a name are two clusters. `about` says where the claim came
from (machine, user, time), for the message that names the holder.

`release` removes the claim if it is the owner's, then, once no claim of that cluster is
left in this home, the directories in `remove` (relative to the home): the cluster's
secrets and the dead processes' scripts, so nothing of the cluster stays on the host. A
claim of another cluster is left as it is, and so are its files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from typing import Any

HELD_EXIT = 5


def _path(where: str, address: str) -> str:
    return os.path.join(os.path.expanduser("~"), where, address.replace("/", "_"))


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:  # a claim cut short by a crash: whose it was is unknown, keep it
        return {"owner": {"cluster": "?", "head": "?"}, "about": {"unreadable": path}}


def claim(
    where: str, address: str, owner: dict[str, str], about: dict[str, Any]
) -> dict[str, Any] | None:
    """Claim the host for `owner`; the holder's claim if another cluster holds it."""
    path = _path(where, address)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    record = {"owner": owner, "about": about}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        held = _read(path)
        if held is None:  # released meanwhile: try once more
            return claim(where, address, owner, about)
        return None if held["owner"] == owner else held
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    return None


def release(where: str, address: str, owner: dict[str, str], remove: list[str]) -> None:
    path = _path(where, address)
    held = _read(path)
    if held is not None and held["owner"] != owner:
        return  # another cluster's host now: none of this is ours to remove
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    directory = os.path.dirname(path)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            other = _read(os.path.join(directory, name))
            if other is not None and other["owner"]["cluster"] == owner["cluster"]:
                return  # a home shared with another host of the cluster: still in use
    home = os.path.expanduser("~")
    for relative in remove:
        shutil.rmtree(os.path.join(home, relative), ignore_errors=True)


if __name__ == "__main__":
    where, op, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if op == "claim":
        holder = claim(where, args["address"], args["owner"], args["about"])
        print(json.dumps(holder))
        sys.exit(HELD_EXIT if holder is not None else 0)
    elif op == "release":
        print(json.dumps(release(where, args["address"], args["owner"], args["remove"])))
    else:
        raise SystemExit(f"unknown claim operation {op!r}")
