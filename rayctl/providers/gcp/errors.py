"""GCP failures as rayctl's errors: HTTP errors of a call (google.api_core exceptions, whose
`errors` carry GCE's reasons) and the errors of a finished operation (codes such as
ZONE_RESOURCE_POOL_EXHAUSTED). Each message names what was being done and, for a missing
permission, the permission to grant."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth import exceptions as auth_exc

from rayctl.errors import AuthError, CapacityError, ProviderError, QuotaError, TransientError

T = TypeVar("T")

# No room in this zone now, or the machine type (or an option) is not offered here: the
# next zone may have it.
CAPACITY = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "RESOURCE_POOL_EXHAUSTED",
        "STOCKOUT",
        "UNSUPPORTED_OPERATION",
        "RESOURCE_NOT_READY",
        "VM_MIN_COUNT_NOT_REACHED",
    }
)
QUOTA = frozenset({"QUOTA_EXCEEDED", "quotaExceeded", "limitExceeded"})
RATE = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
PERMISSION = frozenset({"forbidden", "insufficientPermissions", "IAM_PERMISSION_DENIED"})
# A machine type or accelerator a zone does not offer is a 400 whose message says so.
_NOT_IN_ZONE = ("does not exist in zone", "is not available in zone", "not supported in zone")
# Retried as they are (with backoff): throttling and the service's passing failures.
_RETRYABLE = (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError)


def _reasons(exc: gexc.GoogleAPICallError) -> list[str]:
    found = [str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)]
    return [*found, exc.reason or ""]


def _rate_limited(exc: BaseException) -> bool:
    if isinstance(exc, _RETRYABLE):
        return True
    return isinstance(exc, gexc.Forbidden) and bool(RATE & set(_reasons(exc)))


def convert(exc: BaseException, action: str) -> ProviderError:
    """The rayctl error for a failed call doing `action`, named as the permission it needs
    (e.g. 'compute.instances.create'), which is what to grant when it is refused."""
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return AuthError(
            "no GCP credentials found: run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        )
    if isinstance(exc, auth_exc.RefreshError):
        return AuthError(f"GCP credentials could not be refreshed ({exc}); log in again")
    if not isinstance(exc, gexc.GoogleAPICallError):
        return TransientError(f"could not reach GCP for {action}: {exc}")
    reasons = set(_reasons(exc))
    message = exc.message
    if _rate_limited(exc):
        return TransientError(f"{action}: GCP asks to slow down ({message})")
    if reasons & QUOTA:
        return QuotaError(f"{action}: a project quota stops this ({message}); ask for more quota")
    if isinstance(exc, gexc.Unauthorized):
        return AuthError(f"GCP did not accept the credentials for {action} ({message})")
    if isinstance(exc, gexc.Forbidden) or reasons & PERMISSION:
        return AuthError(f"the GCP credentials in use lack the permission {action} ({message})")
    if isinstance(exc, gexc.BadRequest) and any(s in message for s in _NOT_IN_ZONE):
        return CapacityError(f"{action}: {message}")
    return ProviderError(f"{action} failed ({exc.code}: {message})")


def operation_error(operation: Any, action: str) -> ProviderError | None:
    """The error of a finished compute operation, or None when it succeeded."""
    errors = list(operation.error.errors) if operation.error else []
    if not errors and not operation.http_error_status_code:
        return None
    codes = {e.code for e in errors}
    text = "; ".join(f"{e.code}: {e.message}" for e in errors) or operation.http_error_message
    if codes & CAPACITY:
        return CapacityError(f"{action}: {text}")
    if codes & QUOTA:
        return QuotaError(f"{action}: a project quota stops this ({text}); ask for more quota")
    if operation.http_error_status_code == 403:
        return AuthError(f"the GCP credentials in use lack the permission {action} ({text})")
    if operation.http_error_status_code == 429 or codes & RATE:
        return TransientError(f"{action}: GCP asks to slow down ({text})")
    return ProviderError(f"{action} failed ({text})")


# 429s and passing failures back off (1 s doubling to 30 s, for up to 5 minutes).
_RETRY = gretry.Retry(
    predicate=_rate_limited, initial=1.0, multiplier=2.0, maximum=30.0, timeout=300.0
)


def call(fn: Callable[..., T], action: str, /, *, allow: Iterable[type] = (), **kw: Any) -> T:
    """`fn(**kw)`, retried while GCP throttles, with failures raised as rayctl errors.
    Returns None for the `allow`ed exception classes (NotFound, ...)."""
    allowed = tuple(allow)
    try:
        return _RETRY(fn)(**kw)
    except allowed:
        return None  # type: ignore[return-value]
    except (gexc.GoogleAPICallError, gexc.RetryError, auth_exc.GoogleAuthError) as exc:
        cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
        raise convert(cause, action) from None
