"""More one-CPU tasks than a fresh local cluster has CPUs; prints which nodes ran them.

With `rayctl up cluster-configs/local.yaml` (head + 1 worker, 1 CPU each) the tasks queue
up, and the autoscaler adds workers for them. Exits non-zero unless more than one node
did the work. Usage: python spread_tasks.py [TASKS] [SECONDS_PER_TASK]
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
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    ray.init(log_to_driver=False)
    cpus = ray.cluster_resources().get("CPU", 0)
    print(f"Cluster has {cpus:g} CPUs; running {tasks} tasks of {seconds:g} s each.")
    start = time.time()
    done = collections.Counter(ray.get([work.remote(seconds) for _ in range(tasks)]))
    for (node, ip), count in sorted(done.items()):
        print(f"  {node} ({ip}): {count} tasks")
    print(f"{tasks} tasks ran on {len(done)} nodes in {time.time() - start:.1f} s.")
    if len(done) < 2:
        sys.exit("expected the tasks to run on more than one node")


if __name__ == "__main__":
    main()
