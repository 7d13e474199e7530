"""Benchmark: launching and terminating 100 Azure workers, in parallel against one at a time.

Against the ARM fake (tests/fakes/arm, an HTTP server on 127.0.0.1 driven by the real
azure-mgmt clients with the fake's bearer token; nothing leaves this machine), with rayctl's
Azure provider and the same cluster config on both sides, rounds alternating which side goes
first:

  batched     create_nodes(worker, 100): the NICs and VMs created 16 at a time (and one
              listing); terminate_nodes(all 100): the deletes, 16 at a time, confirmed by
              listing.
  one by one  100 x create_nodes(worker, 1) and 100 x terminate_nodes([id]), what a
              launcher that handles one node per call does.

Each side's run starts from an empty fake and a bootstrapped cluster (resource group, NSG,
vnet, the head's identity), and checks afterwards that no node of the cluster is left. Prints
each side's median seconds and ARM calls, and the ratio one-by-one / batched. Progress goes
to stderr. --operation-s gives the fake's long-running operations a duration (Azure's take
tens of seconds); the provider then polls them every --operation-s / 4.

    .venv/bin/python benchmarks/azure_batch.py [--rounds 3] [--nodes 100] [--operation-s 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import BATCH_SIDES, batch_rounds, print_batch, run_batch_side

from tests.fakes.arm import ArmFake

CONFIG = """\
cluster_name: bench
provider: {type: azure, location: eastus, resource_group: rayctl-bench,
           subscription_id: 00000000-0000-0000-0000-00000000a2b3, availability_zone: "1",
           use_internal_ips: true, ssh_source_cidrs: [203.0.113.7/32],
           cache_stopped_nodes: false}
available_node_types:
  head: {node_config: &vm {azure_arm_parameters: {vmSize: Standard_D2s_v3,
          imagePublisher: Canonical, imageOffer: ubuntu-24_04-lts, imageSku: server}}}
  worker: {node_config: *vm, max_workers: 1000}
head_node_type: head
max_workers: 1000
"""


def run_side(side: str, nodes: int, home: Path, config, operation_s: float) -> tuple[float, int]:
    from rayctl.providers.azure import setup
    from rayctl.providers.azure.instances import AzureProvider
    from tests.fakes.arm.clients import StaticToken

    with ArmFake(
        operation_seconds=operation_s, first_ip="10.230.0.4", subnet="10.230.0.0/16"
    ) as fake:

        def clients() -> setup.Clients:
            return setup.make_clients(
                config.provider,
                StaticToken(fake.token),
                endpoint=fake.endpoint,
                polling_interval=operation_s / 4,
            )

        provider = AzureProvider(config, home=home, clients=clients)
        return run_batch_side(provider, side, nodes, lambda: sum(fake.calls.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--operation-s", type=float, default=0.2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from rayctl.providers.registry import load_config

    with tempfile.TemporaryDirectory(prefix="rayctl-azure-bench-") as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_text(CONFIG)
        config = load_config(path).config
        medians = batch_rounds(
            lambda side: run_side(side, args.nodes, Path(tmp) / "home", config, args.operation_s),
            list(BATCH_SIDES),
            args.rounds,
            "ARM calls",
        )
    title = (
        f"Launch and terminate {args.nodes} Azure workers against the ARM fake "
        f"({args.operation_s:g} s operations), median of {args.rounds} round(s)"
    )
    print_batch(title, medians, args.nodes, "ARM calls", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
