"""The demand-driven autoscaler: scheduler.py (pure policy, imports nothing of rayctl),
inputs.py (what it is fed: node types from the config, `plan`'s demand file), reconciler.py
(observe -> decide -> act on a provider), monitor.py (the head's loop, `rayctl monitor`) and
status.py (the typed status document the monitor writes and `rayctl status` reads)."""
