"""Ray Tune on the cluster: a small grid search over a function's parameters, each trial a
task that reports its score. Prints the best configuration; exits non-zero if it is wrong.

Usage: rayctl submit CONFIG examples/tune_search.py
"""

import sys
import tempfile

import ray
from ray import tune


def objective(config: dict) -> dict:
    # Smallest at x = 3, y = -1.
    return {"loss": (config["x"] - 3) ** 2 + (config["y"] + 1) ** 2}


def main() -> None:
    ray.init()
    tuner = tune.Tuner(
        objective,
        param_space={"x": tune.grid_search([1, 2, 3, 4]), "y": tune.grid_search([-1, 0])},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        # Results stay on the head: a path every node reaches is only needed across machines.
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="rayctl-tune-")),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"{len(results)} trials; best {best.config} with loss {best.metrics['loss']}")
    if len(results) != 8 or results.errors or best.config != {"x": 3, "y": -1}:
        sys.exit("unexpected search result")
    print("ray tune: ok")


if __name__ == "__main__":
    main()
