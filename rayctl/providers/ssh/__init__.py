"""The ssh provider: see config.py (its declaration) and instances.py (the NodeProvider)."""
