"""Benchmark: launching and terminating 100 GCP workers, batched against one at a time.

Against the GCE fake (tests/fakes/gce, an HTTP server on 127.0.0.1 driven by the real
google-cloud-compute clients, anonymous credentials; nothing leaves this machine), with
rayctl's GCP provider and the same cluster config on both sides, rounds alternating which
side goes first:

  batched     create_nodes(worker, 100): one bulkInsert for all of them (and its operation
              waited for, and one listing); terminate_nodes(all 100): the deletes, 16 at a
              time, confirmed by listing.
  one by one  100 x create_nodes(worker, 1) and 100 x terminate_nodes([id]), what a
              launcher that handles one node per call does (Ray's GCP provider inserts one
              instance per call).

Each side's run starts from an empty fake and a bootstrapped cluster (firewall rules, the
head's service account), and checks afterwards that no node of the cluster is left. Prints
each side's median seconds and API calls, and the ratio one-by-one / batched. Progress goes
to stderr.

    .venv/bin/python benchmarks/gcp_batch.py [--rounds 3] [--nodes 100] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import BATCH_SIDES, batch_rounds, print_batch, run_batch_side

from tests.fakes.gce import GceFake

CONFIG = """\
cluster_name: bench
provider: {type: gcp, project_id: bench-project, region: us-central1,
           availability_zone: us-central1-a, use_internal_ips: true,
           ssh_source_cidrs: [203.0.113.7/32], cache_stopped_nodes: false}
available_node_types:
  head: {node_config: &vm {machineType: n2-standard-2, disks: [{boot: true, initializeParams:
          {sourceImage: projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64}}]}}
  worker: {node_config: *vm, max_workers: 1000}
head_node_type: head
max_workers: 1000
"""


def run_side(side: str, nodes: int, home: Path, config) -> tuple[float, int]:
    from rayctl.providers.gcp import setup as gcp_setup
    from rayctl.providers.gcp.instances import GCPProvider

    with GceFake(project="bench-project", subnet="10.220.0.0/16", first_ip="10.220.0.4") as fake:
        os.environ[gcp_setup.ENDPOINT_ENV] = fake.endpoint
        provider = GCPProvider(config, home=home)
        return run_batch_side(provider, side, nodes, lambda: sum(fake.calls.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from rayctl.providers.gcp import setup as gcp_setup
    from rayctl.providers.registry import load_config

    os.environ[gcp_setup.CREDENTIALS_ENV] = "anonymous"
    with tempfile.TemporaryDirectory(prefix="rayctl-gcp-bench-") as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_text(CONFIG)
        config = load_config(path).config
        medians = batch_rounds(
            lambda side: run_side(side, args.nodes, Path(tmp) / "home", config),
            list(BATCH_SIDES),
            args.rounds,
            "GCE calls",
        )
    title = (
        f"Launch and terminate {args.nodes} GCP workers against the GCE fake, "
        f"median of {args.rounds} round(s)"
    )
    print_batch(title, medians, args.nodes, "GCE calls", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
