"""A stateful Compute Engine v1 REST fake, driven in tests by the real google-cloud-compute
clients (see clients.py). One module per resource; the state lives in state.py."""

from .clients import ComputeClients, compute_clients
from .errors import ApiError
from .server import GceFake

__all__ = ["ApiError", "ComputeClients", "GceFake", "compute_clients"]
