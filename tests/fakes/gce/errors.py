"""Errors in the shapes Google's APIs put on the wire.

Two kinds: an `ApiError` is the HTTP error of the call itself (400, 404, 409, 412, 429, ...);
an `OperationError` is how Compute Engine reports a failure of work it accepted (a stockout,
a quota): the call answers 200 with an operation, and the operation ends DONE with `error`,
`httpErrorStatusCode` and `httpErrorMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus


@dataclass  # not frozen: raising sets __traceback__ on the instance
class ApiError(Exception):
    code: int
    message: str
    reason: str
    domain: str = "global"

    def body(self) -> dict:
        # Compute's v1 shape; IAM and Resource Manager add `status` (the gRPC code name),
        # which the SDKs read when present and ignore otherwise.
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": _GRPC_STATUS.get(self.code, "UNKNOWN"),
            }
        }


_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"The resource '{what}' was not found", "notFound")


def invalid(message: str) -> ApiError:
    return ApiError(400, message, "invalid")


def already_exists(what: str) -> ApiError:
    return ApiError(409, f"The resource '{what}' already exists", "alreadyExists")


def rate_limited() -> ApiError:
    return ApiError(429, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits")


@dataclass(frozen=True)
class OperationError:
    code: str  # GCE's error code, e.g. ZONE_RESOURCE_POOL_EXHAUSTED
    message: str
    http_status: int
    details: tuple[dict, ...] = ()

    def fields(self) -> dict:
        """The operation's fields that say it failed (without them `op.result()` succeeds)."""
        error: dict = {"code": self.code, "message": self.message}
        if self.details:
            error["errorDetails"] = list(self.details)
        return {
            "error": {"errors": [error]},
            "httpErrorStatusCode": self.http_status,
            "httpErrorMessage": HTTPStatus(self.http_status).phrase.upper(),
        }


STOCKOUT_CODES = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
)


def stockout(project: str, zone: str, *, with_details: bool = False) -> OperationError:
    where = f"projects/{project}/zones/{zone}"
    if not with_details:
        return OperationError(
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            f"The zone '{where}' does not have enough resources available to fulfill the "
            "request.  Try a different zone, or try again later.",
            503,
        )
    return OperationError(
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        f"The zone '{where}' does not have enough resources available to fulfill the "
        "request.  '(resource type:compute)'.",
        503,
        (
            {
                "errorInfo": {
                    "reason": "resource_availability",
                    "domain": "compute.googleapis.com",
                    "metadatas": {"zone": zone, "vmType": "compute"},
                }
            },
        ),
    )


def quota_exceeded(region: str, metric: str = "CPUS", limit: float = 24.0) -> OperationError:
    return OperationError(
        "QUOTA_EXCEEDED",
        f"Quota '{metric}' exceeded.  Limit: {limit} in region {region}.",
        403,
        (
            {
                "quotaInfo": {
                    "metricName": f"compute.googleapis.com/{metric.lower()}",
                    "limitName": f"{metric}-per-project-region",
                    "dimensions": {"region": region},
                    "limit": limit,
                }
            },
        ),
    )
