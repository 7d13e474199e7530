"""rayctl: a cluster launcher and demand-driven autoscaler for Ray."""

__version__ = "0.1.0"
