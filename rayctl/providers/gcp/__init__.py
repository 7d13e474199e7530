"""The gcp provider: Compute Engine instances through google-cloud-compute."""
