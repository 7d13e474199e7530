"""Local nodes' memory: each gets its type's memory and object store, or a fair share of the
machine's, so that together they promise Ray no more than the machine has."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayctl.providers.local.memory import (
    MIN_OBJECT_STORE_BYTES,
    fair_share,
    machine_memory_bytes,
    with_memory_shares,
)
from rayctl.providers.registry import load_config, validate

GIB = 1024**3


@pytest.mark.parametrize(
    ("total", "max_workers", "memory", "store"),
    [
        # The head alone has the whole machine: 30 % of it object store, as Ray's default.
        (10 * GIB, 0, 7 * GIB, 3 * GIB),
        # A head and four workers on 20 GiB: 4 GiB each.
        (20 * GIB, 4, 4 * GIB - int(4 * GIB * 0.3), int(4 * GIB * 0.3)),
        # A share whose 30 % is just Ray's minimum object store...
        (MIN_OBJECT_STORE_BYTES * 10, 0, MIN_OBJECT_STORE_BYTES * 7, MIN_OBJECT_STORE_BYTES * 3),
        # ... and one a byte short of it: the store stays at the minimum.
        (
            int(MIN_OBJECT_STORE_BYTES / 0.3) - 1,
            0,
            int(MIN_OBJECT_STORE_BYTES / 0.3) - 1 - MIN_OBJECT_STORE_BYTES,
            MIN_OBJECT_STORE_BYTES,
        ),
        # A share smaller than the minimum store leaves no memory for tasks, never less.
        (MIN_OBJECT_STORE_BYTES * 3, 5, 0, MIN_OBJECT_STORE_BYTES),
    ],
)
def test_fair_share(total: int, max_workers: int, memory: int, store: int) -> None:
    assert fair_share(total, max_workers) == (memory, store)


def test_shares_add_up_to_the_machine() -> None:
    for max_workers in (0, 1, 4, 99):
        memory, store = fair_share(24 * GIB, max_workers)
        nodes = 1 + max_workers
        assert 24 * GIB - nodes < nodes * (memory + store) <= 24 * GIB


def test_a_type_keeps_what_it_says_and_gets_a_share_of_the_rest() -> None:
    config = validate(
        {
            "provider": {"type": "local"},
            "max_workers": 3,
            "available_node_types": {
                "head": {"resources": {"CPU": 1}},
                "big": {"resources": {"CPU": 2, "memory": 5 * GIB}},
                "store": {"resources": {"object_store_memory": 1 * GIB}},
            },
            "head_node_type": "head",
        }
    )
    memory, store = fair_share(16 * GIB, 3)
    types = with_memory_shares(config, 16 * GIB).available_node_types
    assert types["head"].resources == {"CPU": 1, "memory": memory, "object_store_memory": store}
    assert types["big"].resources == {"CPU": 2, "memory": 5 * GIB, "object_store_memory": store}
    assert types["store"].resources == {"CPU": 1, "memory": memory, "object_store_memory": GIB}


def test_a_loaded_local_config_has_its_nodes_share(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("provider: {type: local}\nmax_workers: 4\n")
    config = load_config(path).config
    memory, store = fair_share(machine_memory_bytes(), 4)
    for node_type in config.available_node_types.values():
        assert node_type.resources["memory"] == memory
        assert node_type.resources["object_store_memory"] == store


def test_machine_memory_is_this_machines() -> None:
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    assert meminfo[0] == "MemTotal:"
    assert 0 < machine_memory_bytes() <= int(meminfo[1]) * 1024
