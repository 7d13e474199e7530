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
  drop                                   -> null (the state itself, once no host is held)

A record is {"node_type", "kind", "tags", "launched_at"}.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from typing import Any


def _state_dir(relative: str) -> str:
    return os.path.join(os.path.expanduser("~"), relative)


@contextlib.contextmanager
def _locked(where: str, *, write: bool):
    directory = _state_dir(where)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "hosts.json")
    with open(os.path.join(directory, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {"held": {}, "released": {}}
        yield state
        if write:  # written whole, then renamed: a reader never sees half a file
            with open(path + ".tmp", "w") as f:
                json.dump(state, f)
            os.replace(path + ".tmp", path)


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
    if op == "release":
        with _locked(where, write=True) as state:
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
    print(json.dumps(apply(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
