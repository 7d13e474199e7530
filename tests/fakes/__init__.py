"""Stateful REST fakes of cloud APIs, driven in tests by the clouds' real SDK clients."""
