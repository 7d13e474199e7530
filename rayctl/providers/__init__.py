"""Where nodes come from: one package per place (local/, ssh/, aws/, gcp/), each declared once
in registry.py, all behind the NodeProvider protocol of base.py; ssh_access.py is what every
provider whose nodes are reached over SSH shares, cloud.py what the cloud providers share."""
