"""Ray's two basic building blocks on the cluster: tasks (stateless functions run anywhere)
and an actor (a stateful worker process). Prints the results and exits non-zero if any is
wrong.

Usage: rayctl submit CONFIG examples/tasks_and_actors.py
"""

import sys

import ray


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.total = 0

    def add(self, x: int) -> int:
        self.total += x
        return self.total


def main() -> None:
    ray.init()
    squares = ray.get([square.remote(i) for i in range(10)])
    print("squares:", squares)
    counter = Counter.remote()
    totals = ray.get([counter.add.remote(i) for i in range(1, 5)])  # one actor: in order
    print("running totals:", totals)
    if squares != [i * i for i in range(10)] or totals != [1, 3, 6, 10]:
        sys.exit("unexpected results")
    print("tasks and actors: ok")


if __name__ == "__main__":
    main()
