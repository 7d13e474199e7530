#!/usr/bin/env bash
# Set up .venv with rayctl, then run the demo on the embedded local cluster:
# up -> submit an example that needs more CPUs than the cluster starts with -> status -> down.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
config=cluster-configs/local.yaml
trap '.venv/bin/rayctl down "$config" --yes' EXIT  # always tear down, even on failure
.venv/bin/rayctl up "$config" --yes
.venv/bin/rayctl submit "$config" examples/spread_tasks.py  # 8 tasks in flight until the cluster has grown
.venv/bin/rayctl status "$config"
