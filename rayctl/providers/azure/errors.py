"""Azure failures as rayctl's errors. A failed call raises azure-core's HttpResponseError (its
`error.code` is ARM's code); a long-running operation that ARM accepted and then could not do
(an allocation failure) raises the same from `poller.result()`. Throttling (429 with
Retry-After) is retried by the SDK's own retry policy (see setup.RETRY); what is still
throttled after that is a TransientError."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from rayctl.errors import AuthError, CapacityError, ProviderError, QuotaError, TransientError

T = TypeVar("T")

# No room for this size here now, or the size is not offered here: another zone may have it.
CAPACITY = frozenset(
    {
        "AllocationFailed",
        "ZonalAllocationFailed",
        "SkuNotAvailable",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
    }
)
QUOTA = frozenset({"QuotaExceeded", "OperationNotAllowed"})  # Azure says core quota so
PERMISSION = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed"})


def code_of(exc: HttpResponseError) -> str:
    error = exc.error
    return (error.code if error is not None else None) or ""


def convert(exc: AzureError, action: str) -> ProviderError:
    """The rayctl error for a failed call doing `action` (e.g. 'create VM x')."""
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code == 401
    ):
        return AuthError(
            f"Azure did not accept the credentials for {action} ({exc.message}); run `az login`"
            " or set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID"
        )
    if not isinstance(exc, HttpResponseError):
        return TransientError(f"could not reach Azure for {action}: {exc}")
    code = code_of(exc)
    message = (exc.error.message if exc.error is not None else None) or exc.message
    if code in CAPACITY:
        return CapacityError(f"{action}: {code}: {message}")
    if code == "QuotaExceeded" or (code in QUOTA and "quota" in message.lower()):
        return QuotaError(
            f"{action}: a subscription quota stops this ({message}); ask for more quota in the "
            "Azure portal (Quotas), or use a smaller vmSize"
        )
    if exc.status_code == 429:
        return TransientError(f"{action}: Azure kept throttling rayctl ({message}); try again")
    if exc.status_code == 403 or code in PERMISSION:
        return AuthError(
            f"the Azure identity in use may not {action} ({code}: {message}); give it the "
            "Contributor role on the resource group (and User Access Administrator for the "
            "head's role assignment)"
        )
    if exc.status_code is not None and exc.status_code >= 500:
        return TransientError(f"{action}: Azure failed ({code}: {message}); try again")
    return ProviderError(f"{action} failed ({code or exc.status_code}: {message})")


def call(fn: Callable[[], T], action: str, *, missing_ok: bool = False) -> T | None:
    """`fn()`, with failures raised as rayctl errors; None for a 404 when `missing_ok`."""
    try:
        return fn()
    except ResourceNotFoundError:
        if missing_ok:
            return None
        raise ProviderError(f"{action}: not found") from None
    except AzureError as exc:
        raise convert(exc, action) from None
