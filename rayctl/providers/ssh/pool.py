"""The ssh provider's host pool: which hosts a cluster holds, as what, with which tags.

It lives on the head, in one JSON file under an flock, so the laptop's `rayctl` and the
monitor on the head see and change the same state. This file is run there as a script by the
head's `python3` (it needs nothing but the standard library, so it works before rayctl is
installed on the head): `python3 -c <this source> DIR OP JSON` prints the result as JSON,
DIR being the pool's directory relative to the home (rayctl.runtime.head_paths.pool_dir).

  list                                   -> {host: record}
  allocate {hosts, count, record}        -> {host: record} (`count` free ones, those given
                                            back longest ago first: a host that just failed
                                            goes to the back of the line)
  set-tags {host, tags}                  -> null (merged into the host's tags)
  release {hosts}                        -> null
  forget {hosts}                         -> null (release, for hosts whose Ray may still
                                            run; an unreadable state is set aside whole)
  drop                                   -> null (the state itself, once no host is held)

A record is {"node_type", "kind", "tags", "launched_at"}. The file is replaced durably
(fsync, rename, fsync of the directory), so a crash leaves the old state or the new. One
that cannot be read anyway is never taken for an empty pool (that would hand out hosts
that are in use): it is copied aside and the script exits with CORRUPT_EXIT, printing
{"corrupt": path, "copy": path of the copy, "why": ...}.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any

CORRUPT_EXIT = 3


class Corrupt(Exception):
    def __init__(self, path: str, copy: str, why: str) -> None:
        super().__init__(why)
        self.details = {"corrupt": path, "copy": copy, "why": why}


def _state_dir(relative: str) -> str:
    return os.path.join(os.path.expanduser("~"), relative)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {"held": {}, "released": {}}
    try:
        state = json.loads(data) if data.strip() else None
        if state is None:
            raise ValueError("the file is empty")
        if not (isinstance(state.get("held"), dict) and isinstance(state.get("released"), dict)):
            raise ValueError("no 'held' and 'released' maps of hosts")
        return state
    except (ValueError, AttributeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        copy = f"{path}.corrupt-{hashlib.sha256(data).hexdigest()[:8]}"
        if not os.path.exists(copy):
            shutil.copy2(path, copy)
        raise Corrupt(path, copy, why) from None


def _write(path: str, state: dict[str, Any]) -> None:
    """Written whole, synced, renamed, and the rename synced: after a crash the file holds
    the old state or the new, never a part or nothing."""
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(where: str, *, write: bool, reset_corrupt: bool = False):
    directory = _state_dir(where)
    if not write and not os.path.isdir(directory):
        # No pool (a cluster gone, or not yet up): reading one leaves nothing on the host.
        yield {"held": {}, "released": {}}
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "hosts.json")
    with open(os.path.join(directory, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = _read(path)
        except Corrupt:
            if not reset_corrupt:
                raise
            state = {"held": {}, "released": {}}  # the copy _read kept is what it was
        yield state
        if write:
            _write(path, state)


def apply(where: str, op: str, args: dict[str, Any]) -> Any:
    """Run `op` on the pool kept in `where` (relative to the home)."""
    if op == "list":
        with _locked(where, write=False) as state:
            return state["held"]
    if op == "allocate":
        with _locked(where, write=True) as state:
            held, released = state["held"], state["released"]
            free = [h for h in args["hosts"] if h not in held]
            free.sort(key=lambda h: released.get(h, 0.0))  # stable: list order among equals
            taken = {}
            for host in free[: args["count"]]:
                taken[host] = held[host] = {**args["record"], "launched_at": time.time()}
            return taken
    if op == "set-tags":
        with _locked(where, write=True) as state:
            if args["host"] in state["held"]:
                state["held"][args["host"]]["tags"].update(args["tags"])
            return None
    if op in ("release", "forget"):
        with _locked(where, write=True, reset_corrupt=op == "forget") as state:
            for host in args["hosts"]:
                if state["held"].pop(host, None) is not None:
                    state["released"][host] = time.time()
            return None
    if op == "drop":
        directory = _state_dir(where)
        with _locked(where, write=False) as state:
            if not state["held"]:
                for name in ("hosts.json", "lock"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(directory, name))
        with contextlib.suppress(OSError):
            os.rmdir(directory)
        return None
    raise ValueError(f"unknown pool operation {op!r}")


if __name__ == "__main__":
    try:
        print(json.dumps(apply(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
    except Corrupt as exc:
        print(json.dumps(exc.details))
        sys.exit(CORRUPT_EXIT)
