"""Cluster YAML: schema, loading with file:line errors, provider defaults, hashes."""

from rayctl.config.loader import LoadedConfig, load_config
from rayctl.config.schema import ClusterConfig, NodeTypeConfig

__all__ = ["ClusterConfig", "LoadedConfig", "NodeTypeConfig", "load_config"]
