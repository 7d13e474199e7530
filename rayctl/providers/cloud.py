"""What the cloud providers (aws, gcp) share beyond SSH access: launching that restarts
cached (stopped) workers first, and waiting for a new instance's address."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from rayctl.errors import ProviderError
from rayctl.runtime.nodes import Node, Tag

ADDRESS_TIMEOUT_S = 300.0  # for a new instance to get its address


def reusable(cache_stopped_nodes: bool, tags: Mapping[str, str]) -> dict[str, str] | None:
    """The tags a stopped worker must carry to be restarted for a launch with `tags` (the
    same node type, kind and launch hash), or None when nothing is reused."""
    if not cache_stopped_nodes or Tag.LAUNCH_HASH not in tags:
        return None
    return {k: tags[k] for k in (Tag.NODE_TYPE, Tag.KIND, Tag.LAUNCH_HASH)}


def create_reusing(
    count: int, restart: Callable[[int], list[Node]], launch: Callable[[int], list[Node]]
) -> list[Node]:
    """Up to `count` cached workers restarted, the rest launched. When the launch fails
    after some were restarted, those are returned (they are nodes now; the rest is the
    caller's to retry)."""
    if count <= 0:
        return []
    reused = restart(count)
    if len(reused) == count:
        return reused
    try:
        return reused + launch(count - len(reused))
    except ProviderError:
        if reused:
            return reused
        raise


def await_address(
    node: Node,
    *,
    internal: bool,
    lookup: Callable[[], tuple[str | None, bool] | None],
    missing: str,
    timeout_s: float = ADDRESS_TIMEOUT_S,
) -> str:
    """The address rayctl reaches `node` at (internal or external). A new instance gets its
    external one only once it runs, so wait for it, bounded. `lookup()` is the instance's
    address now and whether it is running, or None when it is not there (any more);
    `missing` says what to do about an instance that runs without an external address."""
    address = node.internal_ip if internal else node.external_ip
    deadline = time.monotonic() + timeout_s
    while not address:
        found = lookup()
        if found is None:
            raise ProviderError(f"instance {node.id} is not running (stopped or deleted)")
        address, running = found
        if address:
            break
        if running or time.monotonic() > deadline:
            raise ProviderError(f"instance {node.id} has no public address: {missing}")
        time.sleep(2)
    return address
