"""Small random inputs: how often rayctl's scheduler launches more than Ray's.

For each seed (0-11 by default) it draws --per-seed small inputs: 2 to 4 worker node types
(CPU-only ones with or without memory, and GPU ones), per-type and cluster max_workers that
sometimes bind, up to 6 running workers partly busy, up to 5 task shapes with up to 40 copies
each, up to 2 placement groups of any strategy, and an upscaling_speed of 1 or 9999. Each
input goes to rayctl and to Ray's v1 and v2 schedulers (benchmarks/scheduler.py builds their
inputs and checks they all get the same), and it counts, per Ray scheduler, the inputs where
rayctl launches more CPU, more GPU or more nodes (more than the fewer of Ray's + 10%, the
benchmark's node target); --show prints those inputs.

Ray v2's scheduler has no upscaling_speed (Ray applies it later, when launching), so on an
input with speed 1 rayctl may launch fewer nodes than v2; never more is the point.

    .venv/bin/python benchmarks/scheduler_random.py [--seeds 12] [--per-seed 25] [--show]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from collections import Counter
from dataclasses import replace

from scheduler import (  # benchmarks/scheduler.py, run from the repository root
    CONTENDERS,
    GIB,
    HEAD_TYPE,
    Node,
    PlacementGroup,
    Scenario,
    capacity,
    check_same_input,
    fmt_launch,
)

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def random_types(rng: random.Random) -> dict[str, dict[str, float]]:
    types: dict[str, dict[str, float]] = {}
    for _ in range(rng.randint(2, 4)):
        cpus = rng.choice((1, 2, 4, 8, 16, 32, 64))
        res: dict[str, float] = {"CPU": cpus}
        if rng.random() < 0.5:
            res["memory"] = float(cpus * rng.choice((2, 4, 8)) * GIB)
        if rng.random() < 0.3:
            res["GPU"] = rng.choice((1, 2, 4, 8))
        name = "-".join(
            f"{k[0].lower()}{v / GIB if k == 'memory' else v:g}" for k, v in res.items()
        )
        types[name] = res
    types[HEAD_TYPE] = {"CPU": rng.choice((0, 2))}
    return types


def random_bundle(rng: random.Random, types: dict[str, dict[str, float]]) -> dict[str, float]:
    """A bundle that fits some worker type (mostly), drawn from a type's resources."""
    base = rng.choice([r for n, r in types.items() if n != HEAD_TYPE])
    bundle = {"CPU": float(max(0.5, round(base["CPU"] * rng.choice((0.1, 0.25, 0.5, 1)), 1)))}
    if "GPU" in base and rng.random() < 0.6:
        bundle["GPU"] = float(rng.randint(1, int(base["GPU"])))
    if "memory" in base and rng.random() < 0.4:
        bundle["memory"] = float(int(base["memory"] * rng.choice((0.1, 0.25, 0.5)) // GIB) * GIB)
    if rng.random() < 0.05:
        bundle["CPU"] = 1000.0  # now and then one that nothing holds
    return bundle


def random_scenario(seed: int, index: int) -> Scenario:
    rng = random.Random(f"{seed}/{index}")
    types = random_types(rng)
    workers = [n for n in types if n != HEAD_TYPE]
    type_max = {n: rng.choice((2, 5, 10, 100)) for n in workers}
    nodes = [Node("node-head", HEAD_TYPE, True, types[HEAD_TYPE], types[HEAD_TYPE])]
    for i in range(rng.randint(0, 6)):
        t = rng.choice(workers)
        total = types[t]
        free = {
            k: float(v if rng.random() < 0.4 else rng.randint(0, int(v))) for k, v in total.items()
        }
        nodes.append(Node(f"node-{i:02d}", t, False, total, free))
    demands = tuple(
        (random_bundle(rng, types), rng.randint(1, 40)) for _ in range(rng.randint(0, 5))
    )
    pgs = tuple(
        PlacementGroup(
            f"{i + 1:036x}",
            rng.choice(STRATEGIES),
            tuple([random_bundle(rng, types)] * rng.randint(1, 4)),
        )
        for i in range(rng.randint(0, 2))
    )
    return Scenario(
        label=f"seed {seed} input {index}",
        node_types=types,
        max_workers=rng.choice((5, 20, 1000)),
        nodes=tuple(nodes),
        demands=demands,
        placement_groups=pgs,
        upscaling_speed=rng.choice((1.0, 9999.0)),
        type_max=type_max,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--per-seed", type=int, default=25)
    parser.add_argument("--show", action="store_true", help="print the inputs rayctl loses on")
    args = parser.parse_args()
    # Ray warns about every infeasible bundle; the counts below are the output.
    logging.getLogger("ray.autoscaler").setLevel(logging.ERROR)

    inputs = Counter()  # by whether limits bind
    excess: Counter[tuple[str, str, bool]] = Counter()
    node_target_misses: Counter[bool] = Counter()
    for seed in range(args.seeds):
        for index in range(args.per_seed):
            scenario = random_scenario(seed, index)
            check_same_input(scenario)
            launches = {c.name: c.decide(c.prepare(scenario)) for c in CONTENDERS}
            free = replace(
                scenario,
                max_workers=100_000,
                type_max=dict.fromkeys(scenario.type_max or {}, 100_000),
                upscaling_speed=9999.0,
            )
            # Limits bind when lifting max_workers and upscaling_speed changes a decision.
            bound = any(c.decide(c.prepare(free)) != launches[c.name] for c in CONTENDERS)
            inputs[bound] += 1
            caps = {name: capacity(scenario, launch) for name, launch in launches.items()}
            ours = caps["rayctl"]
            lost = []
            for ray in ("ray-v1", "ray-v2"):
                for what, mine, theirs in (
                    ("CPU", ours.cpu, caps[ray].cpu),
                    ("GPU", ours.gpu, caps[ray].gpu),
                    ("nodes", ours.nodes, caps[ray].nodes),
                ):
                    if mine > theirs + 1e-6:
                        excess[ray, what, bound] += 1
                        lost.append(f"{what} > {ray}")
            fewer = min(caps["ray-v1"].nodes, caps["ray-v2"].nodes)
            if ours.nodes > math.floor(fewer * 1.1 + 1e-9):
                node_target_misses[bound] += 1
            if lost and args.show:
                print(f"{scenario.label}{' (limits bind)' if bound else ''}: {', '.join(lost)}")
                print(f"  types {dict(scenario.node_types)}, type max {scenario.type_max},")
                print(f"  max_workers {scenario.max_workers}, speed {scenario.upscaling_speed:g}")
                for n in scenario.nodes:
                    print(f"  node {n.id} {n.node_type} free {dict(n.available)}")
                print(f"  demands {list(scenario.demands)}")
                for pg in scenario.placement_groups:
                    print(f"  pg {pg.strategy} {list(pg.bundles)}")
                for name, launch in launches.items():
                    cap = caps[name]
                    print(f"  {name:<7} {fmt_launch(launch):<40} CPU {cap.cpu:g} GPU {cap.gpu:g}")
    total = inputs[False] + inputs[True]
    print(f"{total} random inputs (seeds 0-{args.seeds - 1}, {args.per_seed} each):")
    print(f"  {inputs[False]} where no max_workers or upscaling_speed binds, {inputs[True]} where")
    print("  one does (there the schedulers may serve different parts of the demand)")
    print("  rayctl launches more ...                    unbound  bound")
    for ray in ("ray-v1", "ray-v2"):
        for what in ("CPU", "GPU", "nodes"):
            unbound, bound = excess[ray, what, False], excess[ray, what, True]
            print(f"    {what:<5} than {ray:<28} {unbound:>7} {bound:>6}")
    print(
        f"    nodes than the fewer of Ray's + 10%      "
        f"{node_target_misses[False]:>7} {node_target_misses[True]:>6}"
    )


if __name__ == "__main__":
    main()
