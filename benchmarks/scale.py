"""Benchmark: one autoscaler tick (observe + decide + act) at scale, on the fake provider.

A cluster of N workers over 10 node types (CPU, high-memory and GPU ones of distinct sizes)
plus a head, all in Ray (simulated), a third of them busy, a tenth idle past the idle
timeout, and 100,000 pending bundles in 50 shapes (placement groups aside). One tick lists
the nodes, reads Ray's (simulated) state, runs the pure decide step with the scheduler, and
acts: launches (one provider call per type), drains and terminations (one call). Each size
runs in a fresh child process, so its peak RSS is its own; the fake provider keeps nodes in
memory, so the figures are rayctl's own cost, the physical limit of a real provider's calls
aside.

Targets (issue 10): at 10,000 nodes and 100,000 bundles one full tick under 1 s, peak RSS
under 500 MB, launches and terminations batched per type. It also reports how tick time
grows from 100 to 10,000 nodes.

    .venv/bin/python benchmarks/scale.py [--sizes 100,1000,10000] [--bundles 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import log
from rayctl.autoscaler.reconciler import Reconciler, ReconcilerSettings
from rayctl.providers import registry
from rayctl.providers.base import NodeKind, NodeStatus, Tag
from rayctl.providers.fake.instances import FakeProvider

TYPES = {
    "cpu-2": {"CPU": 2, "memory": 8e9},
    "cpu-4": {"CPU": 4, "memory": 16e9},
    "cpu-8": {"CPU": 8, "memory": 32e9},
    "cpu-16": {"CPU": 16, "memory": 64e9},
    "cpu-32": {"CPU": 32, "memory": 128e9},
    "mem-8": {"CPU": 8, "memory": 128e9},
    "mem-16": {"CPU": 16, "memory": 256e9},
    "gpu-1": {"CPU": 8, "GPU": 1, "memory": 64e9},
    "gpu-4": {"CPU": 32, "GPU": 4, "memory": 256e9},
    "gpu-8": {"CPU": 64, "GPU": 8, "memory": 512e9},
}
IDLE_TIMEOUT_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def shapes(rng: random.Random, bundles: int) -> list[tuple[dict[str, float], int]]:
    """50 distinct shapes whose counts add up to `bundles`."""
    found: dict[tuple, dict[str, float]] = {}
    while len(found) < 50:
        shape = {"CPU": float(rng.choice([0.5, 1, 2, 4, 8]))}
        if rng.random() < 0.3:
            shape["memory"] = float(rng.choice([1, 2, 4, 8])) * 1e9
        if rng.random() < 0.15:
            shape["GPU"] = float(rng.choice([1, 2]))
        found.setdefault(tuple(sorted(shape.items())), shape)
    weights = [rng.random() for _ in found]
    counts = [max(1, int(bundles * w / sum(weights))) for w in weights]
    counts[0] += bundles - sum(counts)
    return list(zip(found.values(), counts, strict=True))


def build(nodes: int, bundles: int, seed: int = 0) -> tuple[Reconciler, FakeProvider, Clock]:
    rng = random.Random(seed)
    clock = Clock()
    config = registry.validate(
        {
            "cluster_name": "scale",
            "max_workers": nodes * 2,
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": IDLE_TIMEOUT_S / 60,
            "provider": {"type": "fake"},
            "available_node_types": {
                "head": {"resources": {"CPU": 0}},
                **{name: {"resources": r, "max_workers": nodes * 2} for name, r in TYPES.items()},
            },
            "head_node_type": "head",
        }
    )
    provider = FakeProvider(config, home=Path("/nonexistent"), clock=clock)
    provider.create_nodes("head", 1, {Tag.KIND: NodeKind.HEAD.value})
    names = list(TYPES)
    per_type = [nodes // len(names) + (i < nodes % len(names)) for i in range(len(names))]
    for name, count in zip(names, per_type, strict=True):
        provider.create_nodes(
            name, count, {Tag.KIND: NodeKind.WORKER.value, Tag.STATUS: NodeStatus.READY.value}
        )
    with provider.state() as state:  # all in Ray; a third busy, a tenth idle for long
        for record in state.nodes.values():
            record["booted_at"] = clock.now - 3_600
            record["tags"][Tag.STATUS] = NodeStatus.READY.value
            if record["node_type"] == "head":
                continue
            draw = rng.random()
            if draw < 1 / 3:
                record["used"] = {"CPU": TYPES[record["node_type"]]["CPU"] / 2}
            elif draw < 1 / 3 + 1 / 10:
                record["idle_since"] = clock.now - 2 * IDLE_TIMEOUT_S
            else:
                record["idle_since"] = clock.now - IDLE_TIMEOUT_S / 2
    provider.ray.set_demand(shapes(rng, bundles))
    provider.calls.clear()

    def boot(node, head, cancelled: threading.Event) -> None:  # launched nodes: nothing to do
        return None

    reconciler = Reconciler(
        config,
        provider,
        snapshot=provider.ray.snapshot,
        drain=provider.ray.drain,
        boot=boot,
        clock=clock,
        settings=ReconcilerSettings(boot_threads=4),
    )
    return reconciler, provider, clock


def measure(nodes: int, bundles: int, rounds: int, queue: multiprocessing.Queue) -> None:
    """In a child: build, then time `rounds` first ticks on fresh copies."""
    times, calls = [], {}
    for round_ in range(rounds):
        reconciler, provider, _clock = build(nodes, bundles, seed=round_)
        started = time.perf_counter()
        decision = reconciler.tick()
        times.append(time.perf_counter() - started)
        reconciler.close()
        assert decision is not None
        calls = dict(provider.calls)
        launched = sum(count for count, _ in decision.launches.values())
        types_launched = len(decision.launches)
        terminated = len(decision.terminate) + len(decision.drain)
    queue.put(
        {
            "nodes": nodes,
            "bundles": bundles,
            "tick_s": statistics.median(times),
            "tick_runs_s": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "calls": calls,
            "launched": launched,
            "launch_types": types_launched,
            "terminated": terminated,
        }
    )


def run(nodes: int, bundles: int, rounds: int) -> dict:
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=measure, args=(nodes, bundles, rounds, queue)
    )
    child.start()
    result = queue.get(timeout=600)
    child.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--bundles", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for nodes in (int(s) for s in args.sizes.split(",")):
        log(f"{nodes} nodes x {args.bundles} bundles ...")
        results.append(run(nodes, args.bundles, args.rounds))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'nodes':>7} {'bundles':>8} {'tick':>9} {'peak RSS':>9}  calls this tick")
    for r in results:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
        print(
            f"{r['nodes']:>7} {r['bundles']:>8} {r['tick_s'] * 1000:>7.1f}ms "
            f"{r['peak_rss_mb']:>7.0f}MB  {calls} (launched {r['launched']} over "
            f"{r['launch_types']} types, terminated {r['terminated']})"
        )
    first, last = results[0], results[-1]
    if len(results) > 1:
        growth = last["tick_s"] / first["tick_s"]
        size = last["nodes"] / first["nodes"]
        print(f"tick time grows {growth:.1f}x for {size:.0f}x the nodes")
    big = [r for r in results if r["nodes"] >= 10_000 and r["bundles"] >= 100_000]
    for r in big:
        batched = (
            r["calls"].get("create_nodes", 0) <= r["launch_types"]
            and r["calls"].get("terminate_nodes", 0) <= 1
        )
        print(f"target tick < 1 s: {'PASS' if r['tick_s'] < 1 else 'FAIL'} ({r['tick_s']:.3f} s)")
        rss_ok = r["peak_rss_mb"] < 500
        print(f"target peak RSS < 500 MB: {'PASS' if rss_ok else 'FAIL'} ({r['peak_rss_mb']:.0f})")
        print(f"target batched per type: {'PASS' if batched else 'FAIL'} ({r['calls']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
