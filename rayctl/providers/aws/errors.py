"""AWS failures as rayctl's errors, from one table of EC2/IAM/STS error codes.

Every AWS call goes through `call`, so a message always names the IAM action that failed
(`ec2:RunInstances`), which is what a user must grant when it is a permission that is missing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)

from rayctl.errors import AuthError, CapacityError, ProviderError, QuotaError, TransientError

# No room in this subnet or zone right now: try the next subnet/zone, then back off the type.
CAPACITY = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "UnfulfillableCapacity",  # spot
        "SpotMaxPriceTooLow",
        "Unsupported",  # the instance type (or option) is not offered in this zone
        "InsufficientFreeAddressesInSubnet",
    }
)
# Account limits: the same in every zone of the region, so failing over does not help.
QUOTA = frozenset(
    {
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "VolumeLimitExceeded",
        "MaxIOPSLimitExceeded",
        "AddressLimitExceeded",
        "SecurityGroupLimitExceeded",
        "RulesPerSecurityGroupLimitExceeded",
        "ResourceLimitExceeded",
        "LimitExceeded",  # IAM
    }
)
# The credentials themselves are missing, wrong, expired or not enabled for the service.
CREDENTIALS = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "OptInRequired",
        "Blocked",
        "PendingVerification",
    }
)
# Valid credentials without the permission for this call.
PERMISSION = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
# Worth retrying as it is, after a pause.
TRANSIENT = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "ServiceFailure",  # IAM
        "RequestTimeout",
        "RequestTimeoutException",
        "EntityTemporarilyUnmodifiable",  # IAM
        "ConcurrentTagAccess",
        "IncorrectInstanceState",  # e.g. starting an instance that is still stopping
    }
)
KINDS: dict[str, type[ProviderError]] = {
    **dict.fromkeys(CAPACITY, CapacityError),
    **dict.fromkeys(QUOTA, QuotaError),
    **dict.fromkeys(CREDENTIALS, AuthError),
    **dict.fromkeys(PERMISSION, AuthError),
    **dict.fromkeys(TRANSIENT, TransientError),
}
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY), or run `aws configure` / `aws sso login`"
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def convert(exc: BotoCoreError | ClientError, action: str) -> ProviderError:
    """The rayctl error for an AWS failure of `action` (an IAM action: 'ec2:RunInstances')."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AuthError(NO_CREDENTIALS)
    if isinstance(exc, TokenRetrievalError | SSOError):
        return AuthError(f"AWS credentials could not be refreshed ({exc}); run `aws sso login`")
    if isinstance(exc, ConnectionError | ReadTimeoutError):
        return TransientError(f"could not reach AWS for {action}: {exc}")
    if not isinstance(exc, ClientError):
        return ProviderError(f"{action} failed: {exc}")
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")).strip()
    if code == "InvalidParameterValue" and "iamInstanceProfile" in message:
        # A new instance profile takes a few seconds to become usable by EC2.
        return TransientError(f"{action}: the instance profile is not usable yet: {message}")
    kind = KINDS.get(code, ProviderError)
    if code in CREDENTIALS:
        text = (
            f"AWS did not accept the credentials for {action} ({code}: {message}); "
            "check AWS_PROFILE / AWS_ACCESS_KEY_ID, or run `aws sso login`"
        )
    elif code in PERMISSION:
        text = f"the AWS credentials in use lack the permission {action} ({code}: {message})"
        if "encoded authorization failure message" in message.lower():
            text += "; `aws sts decode-authorization-message` shows the details"
    elif code in QUOTA:
        text = f"{action}: an account limit stops this ({code}: {message}); ask for a higher quota"
    else:
        text = f"{action} failed ({code}: {message})"
    return kind(text)


def _action(client: Any, method: str) -> str:
    return f"{client.meta.service_model.service_name}:{client.meta.method_to_api_mapping[method]}"


def call(client: Any, method: str, /, *, allow: Collection[str] = (), **params: Any) -> Any:
    """`client.<method>(**params)`, with failures raised as rayctl errors. Returns None when
    AWS answers with one of the `allow`ed error codes (NotFound, DryRunOperation, ...)."""
    action = _action(client, method)
    try:
        return getattr(client, method)(**params)
    except ClientError as exc:
        if error_code(exc) in allow:
            return None
        raise convert(exc, action) from None
    except BotoCoreError as exc:
        raise convert(exc, action) from None


def paginate(client: Any, method: str, /, **params: Any) -> Iterator[Any]:
    """Every page of `client.<method>(**params)`, failures raised as rayctl errors."""
    try:
        yield from client.get_paginator(method).paginate(**params)
    except (ClientError, BotoCoreError) as exc:
        raise convert(exc, _action(client, method)) from None
