"""The fake provider: nodes in memory (or a file), with faults on demand, and Ray's side
simulated, for autoscaler tests and simulations without machines or Ray."""
