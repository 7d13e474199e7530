"""Ray Data on the cluster: a dataset transformed in batches (map_batches), aggregated
(groupby), written to Parquet and read back. Exits non-zero if a result is wrong.

Usage: rayctl submit CONFIG examples/data_pipeline.py [OUTPUT_DIR]
  OUTPUT_DIR is where the Parquet files go (default: a temporary directory). On a cluster
  of several machines it must be storage every node reaches (a shared filesystem, or a
  bucket such as s3://...); on a local cluster any directory works.
"""

import sys
import tempfile

import numpy as np
import ray

ROWS = 1000
GROUPS = 10


def add_columns(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Ray Data's default batches: a NumPy array per column. (batch_format="pandas" gives
    # DataFrames, whose columns with pandas 3 may be Arrow-backed, which lack `%`.)
    batch["group"] = batch["id"] % GROUPS
    batch["square"] = batch["id"] ** 2
    return batch


def main() -> None:
    ray.init()
    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="rayctl-data-")
    ds = ray.data.range(ROWS).map_batches(add_columns)
    counts = {row["group"]: row["count()"] for row in ds.groupby("group").count().take_all()}
    print("rows per group:", dict(sorted(counts.items())))
    ds.write_parquet(out)
    back = ray.data.read_parquet(out)
    total = back.sum("square")
    print(f"wrote and read back {back.count()} rows in {out}; sum of squares {total}")
    if counts != dict.fromkeys(range(GROUPS), ROWS // GROUPS):
        sys.exit("groupby counted wrong")
    if back.count() != ROWS or total != sum(i * i for i in range(ROWS)):
        sys.exit("the Parquet round trip lost rows")
    print("ray data: ok")


if __name__ == "__main__":
    main()
