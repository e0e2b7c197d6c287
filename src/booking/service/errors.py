"""The domain's errors: a small typed hierarchy, each with a stable machine-readable `code`.

The service layer raises these and knows nothing of HTTP; `booking.api.problems` maps each class
to a status code in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class RuleViolations(RuleViolation):
    """Several independent broken rules found together, answered as one 422 that lists each
    (`violations`, every one with its field and code). Raise it through `raise_all`."""

    code = "rules_violated"

    def __init__(self, violations: Sequence[RuleViolation]) -> None:
        super().__init__(
            f"{len(violations)} rules are broken: " + " ".join(v.detail for v in violations)
        )
        self.violations = tuple(violations)


def raise_all(errors: Sequence[DomainError]) -> None:
    """Raise what a check found, if anything: a NotFound first (the request names something
    that does not exist, which no other answer would fix), then one rule violation as itself,
    several as one RuleViolations."""
    for error in errors:
        if not isinstance(error, RuleViolation):
            raise error
    violations = [e for e in errors if isinstance(e, RuleViolation)]
    if len(violations) == 1:
        raise violations[0]
    if violations:
        raise RuleViolations(violations)


class Conflict(DomainError):
    """The request collides with the current state: e.g. the slot is taken (409)."""

    code = "conflict"
    title = "Conflict"


class UnsupportedMediaType(DomainError):
    """The request body is not in a format the server reads (415)."""

    code = "unsupported_media_type"
    title = "Unsupported media type"


class Unavailable(DomainError):
    """A dependency (the database) is unreachable; worth retrying later (503)."""

    code = "service_unavailable"
    title = "Service unavailable"
