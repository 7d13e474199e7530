"""Keeps more one-CPU tasks in flight than a fresh local cluster has CPUs, for a while, and
prints per node how many of them ran there.

With `rayctl up cluster-configs/local.yaml` (head + 1 worker, 1 CPU each) the tasks queue
up, the autoscaler adds workers for them, and the tasks that replace finished ones run on
the new workers as soon as they join: the summary marks the nodes that joined while the job
ran. Exits non-zero unless more than one node did the work.

Usage: python spread_tasks.py [TASKS] [SECONDS_PER_TASK] [RUN_FOR_S]
  TASKS tasks in flight (default 8) of SECONDS_PER_TASK each (default 2); as one ends,
  another takes its place until RUN_FOR_S seconds have passed (default 20; 0: TASKS only).
"""

import collections
import os
import sys
import time

import ray


@ray.remote(num_cpus=1)
def work(seconds: float) -> tuple[str, str]:
    time.sleep(seconds)
    return os.environ.get("RAY_CLOUD_INSTANCE_ID", "unknown"), ray.util.get_node_ip_address()


def main() -> None:
    args = sys.argv[1:]
    tasks = int(args[0]) if len(args) > 0 else 8
    seconds = float(args[1]) if len(args) > 1 else 2.0
    run_for = float(args[2]) if len(args) > 2 else 20.0
    ray.init(log_to_driver=False)
    at_start = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    cpus = ray.cluster_resources().get("CPU", 0)
    print(
        f"Cluster has {len(at_start)} nodes, {cpus:g} CPUs; keeping {tasks} tasks of "
        f"{seconds:g} s in flight for {run_for:g} s."
    )
    start = time.time()
    in_flight = [work.remote(seconds) for _ in range(tasks)]
    done: collections.Counter[tuple[str, str]] = collections.Counter()
    while in_flight:
        finished, in_flight = ray.wait(in_flight, num_returns=1)
        done.update(ray.get(finished))
        if time.time() - start < run_for:
            in_flight.append(work.remote(seconds))
    for (node, ip), count in sorted(done.items(), key=lambda item: item[0][1]):
        added = "" if ip in at_start else "  (joined while the job ran)"
        print(f"  {node} ({ip}): {count} tasks{added}")
    joined = sum(ip not in at_start for _, ip in done)
    print(
        f"{done.total()} tasks ran on {len(done)} nodes ({joined} joined while the job ran) "
        f"in {time.time() - start:.1f} s."
    )
    if len(done) < 2:
        sys.exit("expected the tasks to run on more than one node")


if __name__ == "__main__":
    main()
