"""Errors in Azure Resource Manager's shapes.

An `ArmError` is the HTTP error of the call itself: status plus
`{"error": {"code": ..., "message": ...}}`. An `OperationFailure` is how ARM reports work it
accepted and then could not do (an allocation failure): the call answered 201/202, and its
async operation ends `{"status": "Failed", "error": {...}}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass  # not frozen: raising sets __traceback__ on the instance
class ArmError(Exception):
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class OperationFailure:
    code: str
    message: str

    def error(self) -> dict:
        return {"code": self.code, "message": self.message}


def not_found(type_: str, name: str, group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{type_}/{name}' under resource group '{group}' was not found. For more"
        " details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def group_not_found(group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


def invalid(message: str, code: str = "InvalidParameter") -> ArmError:
    return ArmError(400, code, message)


def allocation_failed(zone: str | None) -> OperationFailure:
    if zone is None:
        return OperationFailure(
            "AllocationFailed",
            "Allocation failed. We do not have sufficient capacity for the requested VM size in"
            " this region. Read more about improving likelihood of allocation success at"
            " http://aka.ms/allocation-guidance",
        )
    return OperationFailure(
        "ZonalAllocationFailed",
        "Allocation failed. We do not have sufficient capacity for the requested VM size in"
        " this zone. Read more about improving likelihood of allocation success at"
        " http://aka.ms/allocation-guidance",
    )


def sku_not_available(size: str, location: str, zone: str | None) -> ArmError:
    where = f"location '{location}'" + (f" zones '{zone}'" if zone else "")
    return ArmError(
        409,
        "SkuNotAvailable",
        f"The requested VM size for resource 'Following SKUs have failed for Capacity"
        f" Restrictions: {size}' is currently not available in {where}. Please try another size"
        " or deploy to a different location or zones. See https://aka.ms/azureskunotavailable"
        " for details.",
    )


def quota_exceeded(location: str, family: str = "standardDSv3Family") -> ArmError:
    # Azure reports a core quota as OperationNotAllowed, not as a code of its own.
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Operation could not be completed as it results in exceeding approved {family} Cores"
        f" quota. Additional details - Deployment Model: Resource Manager, Location: {location},"
        " Current Limit: 10, Current Usage: 8, Additional Required: 4, (Minimum) New Limit"
        " Required: 12. Submit a request for Quota increase at https://aka.ms/ProdportalCRP",
    )


def too_many_requests(retry_after: float) -> ArmError:
    return ArmError(
        429,
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type."
        " Please retry after the time in the Retry-After header.",
        {"Retry-After": f"{retry_after:g}"},
    )
