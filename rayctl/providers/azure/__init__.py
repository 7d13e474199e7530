"""The azure provider: VMs through azure-mgmt-compute/network/resource and azure-identity."""
