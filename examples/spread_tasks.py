"""Keeps more one-CPU tasks in flight than a fresh local cluster has CPUs until the cluster
has grown, and prints per node how many of them ran there.

With `rayctl up cluster-configs/local.yaml` (head + 1 worker, 1 CPU each) the tasks queue
up, the autoscaler adds workers for them, and the tasks that replace finished ones run on
the new workers as soon as they join: the summary marks the nodes that joined while the job
ran. Exits non-zero unless more than one node did the work.

Usage: python spread_tasks.py [TASKS] [SECONDS_PER_TASK] [MAX_S]
  TASKS tasks in flight (default 8) of SECONDS_PER_TASK each (default 2). As one ends,
  another takes its place until the cluster has grown and settled (a node joined, none
  joined for the last 4 tasks' time, and every node ran at least 2 tasks), or MAX_S
  seconds have passed (default 45; 0: TASKS tasks only).
"""

import collections
import os
import sys
import time

import ray

SETTLE_TASKS = 4  # no node joined for this many tasks' time: the cluster stopped growing
TASKS_PER_NODE = 2


@ray.remote(num_cpus=1)
def work(seconds: float) -> tuple[str, str]:
    time.sleep(seconds)
    return os.environ.get("RAY_CLOUD_INSTANCE_ID", "unknown"), ray.util.get_node_ip_address()


def main() -> None:
    args = sys.argv[1:]
    tasks = int(args[0]) if len(args) > 0 else 8
    seconds = float(args[1]) if len(args) > 1 else 2.0
    max_s = float(args[2]) if len(args) > 2 else 45.0
    ray.init(log_to_driver=False)
    at_start = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    cpus = ray.cluster_resources().get("CPU", 0)
    print(
        f"Cluster has {len(at_start)} nodes, {cpus:g} CPUs; keeping {tasks} tasks of "
        f"{seconds:g} s in flight until it has grown (at most {max_s:g} s)."
    )
    start = last_join = time.time()
    in_flight = [work.remote(seconds) for _ in range(tasks)]
    done: collections.Counter[tuple[str, str]] = collections.Counter()
    while in_flight:
        finished, in_flight = ray.wait(in_flight, num_returns=1)
        for node in ray.get(finished):
            if node not in done:  # its first task: the node is doing work
                last_join = time.time()
            done[node] += 1
        now = time.time()
        grown = any(ip not in at_start for _, ip in done)
        settled = (
            grown
            and now - last_join >= SETTLE_TASKS * seconds
            and min(done.values()) >= TASKS_PER_NODE
        )
        if now - start < max_s and not settled:
            in_flight.append(work.remote(seconds))
    # the nodes there at the start first, then those that joined
    for (node, ip), count in sorted(done.items(), key=lambda i: (i[0][1] not in at_start, i[0])):
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
