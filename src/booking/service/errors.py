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
        errors: Sequence[DomainError] = (),
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field  # the body field or route parameter at fault, when there is one
        self.extra = extra or {}
        # When one request breaks several independent rules: each of them, in the order they
        # are checked, with its own code and field (see `several`). Empty for a single rule.
        self.errors: tuple[DomainError, ...] = tuple(errors)


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


class ReceiverUnavailable(DomainError):
    """The organization's webhook receiver did not answer a before-hook in time, or failed,
    and its organization refuses bookings then (503)."""

    code = "webhook_unavailable"
    title = "Webhook receiver unavailable"


def several(broken: Sequence[DomainError]) -> DomainError:
    """The one error that answers the rules `broken` (at least one), in the order they were
    checked. A rule broken alone is answered as itself, so it keeps its own class and status
    (an unknown tag alone is a 404, as it always was); several are one `RuleViolation` (422)
    listing each in `errors`, with the first one's code and field."""
    if len(broken) == 1:
        return broken[0]
    first = broken[0]
    return RuleViolation(
        f"The request breaks {len(broken)} rules: " + " ".join(e.detail for e in broken),
        code=first.code,
        field=first.field,
        errors=broken,
    )
