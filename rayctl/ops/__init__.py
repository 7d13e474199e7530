"""Orchestration the CLI calls: `up`, `down`, a cluster's status, and the head (finding it,
starting and stopping its autoscaler). Above providers and the autoscaler, below the CLI."""
