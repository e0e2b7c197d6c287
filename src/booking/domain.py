"""The domain's closed vocabularies and the identity of a calendar-day: plain values that the
models (their CHECK constraints), the schemas (their OpenAPI enums), the loader, the statements
and the service layer share, each defined once here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class AppointmentStatus(StrEnum):
    PLANNED = "Planned"
    WAITING = "Waiting"  # checked in, in the queue
    PENDING = "Pending"  # checked in, waiting for an agent to let the case into the queue
    CANCELLED = "Cancelled"
    COMPLETED = "Completed"
    NO_SHOW = "NoShow"


# Where a check-in moves a case, as the service's configuration says (the original's "initial
# case status"); together, the statuses of a checked-in appointment.
CHECKED_IN_STATUSES = (AppointmentStatus.WAITING, AppointmentStatus.PENDING)


class CheckInMode(StrEnum):
    AGENT = "Agent"  # an agent checks the customer in: allowed even with preventSelfCheckIn
    KIOSK = "Kiosk"  # the customer checks in alone: refused with preventSelfCheckIn


class Channel(StrEnum):
    FACE_TO_FACE = "FaceToFace"
    VIDEO = "Video"
    PHONE = "Phone"


class FieldKind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    CHOICE = "choice"


class CalendarIssueCode(StrEnum):
    """Configuration problems that a calendar reports in its `issues`."""

    NO_WORKING_HOURS = "no_working_hours"
    NO_SERVICE_TYPES = "no_service_types"
    NO_SERVICE_TYPE_FITS = "no_service_type_fits"


class CustomerFieldKind(StrEnum):
    """The kinds of a customer field type: a booking field's, and phone and email (checked
    and normalized as a booking's contact phone and email)."""

    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    CHOICE = "choice"
    PHONE = "phone"
    EMAIL = "email"


class Hook(StrEnum):
    """The service hooks of the original this server calls, as a service switches them on
    (`{baseUrl}/service/actions/{hook}`): the before-hooks during the request, the after-hooks
    from the outbox. The original has no cancel or reschedule hook: those two are named in its
    style."""

    BEFORE_BOOK = "beforeBookAppointment"
    BEFORE_CHECK_IN = "beforeCheckIn"
    AFTER_BOOK = "afterBookAppointment"
    AFTER_CANCEL = "afterCancelAppointment"
    AFTER_CHECK_IN = "afterCheckIn"
    AFTER_RESCHEDULE = "afterRescheduleAppointment"


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One calendar unit of a service on one local date: what a booking occupies, what a
    listing reads, and the unit that writers lock."""

    service_id: uuid.UUID
    cu_index: int
    on_date: date
