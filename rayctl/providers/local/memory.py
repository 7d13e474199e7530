"""Each local node's share of this machine's memory.

Left to itself, every `ray start` on this machine claims all of its memory, so a head and
four workers promise Ray five machines' worth. Instead each node gets what its type's
`resources` say (memory, object_store_memory) or else a fair share: the machine's memory
divided among the most nodes the cluster may have (the head and max_workers workers), of
which Ray's usual fraction is the object store and the rest the `memory` resource.
"""

from __future__ import annotations

import os
from pathlib import Path

from rayctl.config.schema import ClusterConfig

# Ray 2.60's DEFAULT_OBJECT_STORE_MEMORY_PROPORTION and OBJECT_STORE_MINIMUM_MEMORY_BYTES
# (ray/_private/ray_constants.py): Ray refuses a smaller object store.
OBJECT_STORE_FRACTION = 0.3
MIN_OBJECT_STORE_BYTES = 75 * 1024**2
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def machine_memory_bytes() -> int:
    """This machine's memory, or the memory limit of the cgroup rayctl runs in (a container)
    when that is lower, as Ray counts it."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in _CGROUP_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():  # "max": no limit
            total = min(total, int(limit))
    return total


def fair_share(total_bytes: int, max_workers: int) -> tuple[int, int]:
    """(memory, object_store_memory) of one of 1 + max_workers nodes sharing `total_bytes`.
    The object store is never below Ray's minimum; the two add up to the share unless that
    minimum is more than the share (a tiny machine or thousands of workers)."""
    share = total_bytes // (1 + max_workers)
    store = max(int(share * OBJECT_STORE_FRACTION), MIN_OBJECT_STORE_BYTES)
    return max(share - store, 0), store


def with_memory_shares(config: ClusterConfig, total_bytes: int) -> ClusterConfig:
    """`config` with memory and object_store_memory in every node type's resources: as the
    type gives them, else its fair share of `total_bytes`."""
    memory, store = fair_share(total_bytes, config.max_workers)
    types = {
        name: node_type.model_copy(
            update={
                "resources": {
                    "memory": float(memory),
                    "object_store_memory": float(store),
                    **node_type.resources,
                }
            }
        )
        for name, node_type in config.available_node_types.items()
    }
    return config.model_copy(update={"available_node_types": types})
