"""The real azure-mgmt clients, pointed at the fake (or any ARM endpoint).

The provider takes a factory of these, so tests hand it `lambda: arm_clients(fake)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from .server import ArmFake


class StaticToken:
    """A TokenCredential that hands out one fixed token (the fake checks it)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class AllowHttp(SansIOHTTPPolicy):
    """The bearer-token policy refuses to send a token over http unless told otherwise."""

    def on_request(self, request: PipelineRequest) -> None:
        request.context["enforce_https"] = False


@dataclass(frozen=True)
class ArmClients:
    compute: ComputeManagementClient
    network: NetworkManagementClient
    resources: ResourceManagementClient
    msi: ManagedServiceIdentityClient
    authorization: AuthorizationManagementClient


def arm_clients(fake: ArmFake, *, token: str | None = None, **options: Any) -> ArmClients:
    """Clients for `fake.endpoint` with its token (or `token`), no polling delay; `options`
    go to every client (e.g. retry_total)."""
    kwargs: dict[str, Any] = {
        "credential": StaticToken(fake.token if token is None else token),
        "subscription_id": fake.subscription,
        "base_url": fake.endpoint,
        "polling_interval": 0,
        "per_call_policies": [AllowHttp()],
        **options,
    }
    return ArmClients(
        compute=ComputeManagementClient(**kwargs),
        network=NetworkManagementClient(**kwargs),
        resources=ResourceManagementClient(**kwargs),
        msi=ManagedServiceIdentityClient(**kwargs),
        authorization=AuthorizationManagementClient(**kwargs),
    )
