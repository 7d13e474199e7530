"""The aws provider: see config.py (its declaration) and instances.py (the NodeProvider)."""
