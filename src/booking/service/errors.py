"""The domain's errors: a small typed hierarchy, each with a stable machine-readable `code`.

The service layer raises these and knows nothing of HTTP; `booking.api.problems` maps each class
to a status code in one table.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    title: str = "Request refused"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field  # the body field or route parameter at fault, when there is one
        self.extra = extra or {}


class NotFound(DomainError):
    """The resource does not exist, or belongs to another tenant (the answer is the same)."""

    code = "not_found"
    title = "Not found"


class Forbidden(DomainError):
    code = "forbidden"
    title = "Forbidden"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    title = "Unauthenticated"


class RuleViolation(DomainError):
    """The request is well-formed but breaks a booking rule (422)."""

    code = "rule_violation"
    title = "Booking rule violated"


class Conflict(DomainError):
    """The request collides with the current state: e.g. the slot is taken (409)."""

    code = "conflict"
    title = "Conflict"
