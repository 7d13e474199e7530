"""Cluster YAML, independent of any provider: the schema, loading with file:line errors,
defaults, hashes. Providers declare their own sections (ProviderSpec); the registry in
rayctl.providers.registry binds them, and its load_config is the one to call."""

from rayctl.config.loader import LoadedConfig
from rayctl.config.schema import ClusterConfig, NodeTypeConfig

__all__ = ["ClusterConfig", "LoadedConfig", "NodeTypeConfig"]
