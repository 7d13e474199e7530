"""Benchmark: launching and terminating 100 AWS workers, batched against one at a time.

Against moto's server (ThreadedMotoServer on 127.0.0.1, reached through AWS_ENDPOINT_URL,
fake credentials; nothing leaves this machine), with rayctl's AWS provider and the same
cluster config on both sides, rounds alternating which side goes first:

  batched     create_nodes(worker, 100): one run_instances call for all of them;
              terminate_nodes(all 100): one terminate_instances call, confirmed.
  one by one  100 x create_nodes(worker, 1) and 100 x terminate_nodes([id]), what a
              launcher that handles one node per call does.

Each side's run starts from an empty moto (reset) and a bootstrapped cluster (key pair,
security group, head role), and checks afterwards that no node of the cluster is left.
Prints each side's median seconds and API calls, and the ratio one-by-one / batched.
Progress goes to stderr.

    .venv/bin/python benchmarks/aws_batch.py [--rounds 3] [--nodes 100] [--json]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common import BATCH_SIDES, batch_rounds, print_batch, run_batch_side

REGION = "us-west-2"
IMAGE = "ami-1e749f67"  # one of moto's images
CONFIG = """\
cluster_name: bench
provider: {{type: aws, region: {region}, ssh_source_cidrs: [203.0.113.7/32],
           cache_stopped_nodes: false}}
available_node_types:
  head: {{node_config: {{InstanceType: m5.large, ImageId: {image}}}}}
  worker: {{node_config: {{InstanceType: m5.large, ImageId: {image}}}, max_workers: 1000}}
head_node_type: head
max_workers: 1000
"""


def count_calls(provider) -> Callable[[], int]:
    """How many EC2 API calls the provider's client has made since this was called."""
    seen = [0]

    def tick(**_: object) -> None:
        seen[0] += 1

    provider.ec2.meta.events.register("before-call.ec2", tick)
    return lambda: seen[0]


def run_side(side: str, nodes: int, home: Path, config) -> tuple[float, int]:
    from rayctl.providers.aws.instances import AWSProvider

    # Each run starts from an empty moto: its calls slow down as terminated instances pile up.
    urllib.request.urlopen(
        urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST")
    ).close()
    provider = AWSProvider(config, home=home)
    return run_batch_side(provider, side, nodes, count_calls(provider))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    from rayctl.providers.registry import load_config

    try:
        with tempfile.TemporaryDirectory(prefix="rayctl-aws-bench-") as tmp:
            path = Path(tmp) / "cluster.yaml"
            path.write_text(CONFIG.format(region=REGION, image=IMAGE))
            config = load_config(path).config
            medians = batch_rounds(
                lambda side: run_side(side, args.nodes, Path(tmp) / "home", config),
                list(BATCH_SIDES),
                args.rounds,
                "EC2 calls",
            )
    finally:
        server.stop()
    title = (
        f"Launch and terminate {args.nodes} AWS workers against moto's server, "
        f"median of {args.rounds} round(s)"
    )
    print_batch(title, medians, args.nodes, "EC2 calls", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
