"""The events a change announces, and the one call a use case's in-lock step makes for each:
`await announce(tx, catalog, AFTER_CANCEL, record)`. The event is written only when the
organization's webhooks are enabled and the hook is switched on for the service (then one
round trip, in the change's transaction); otherwise nothing at all is done. A booking's event
costs no round trip: `of_booking` hands it to the appointment's INSERT, which writes both.

The body is the original's After Book Appointment body (see the contract, "Webhooks") with
`eventSequence`, the event's number among its case's events (1, 2, ...): a receiver that sees
a lower number than one it already has holds a stale event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from booking.service.catalog import Catalog
from booking.service.wallclock import windows_time_zone
from booking.store import outbox
from booking.store.appointments import AppointmentRecord, inserted
from booking.store.db import LockedCalendarDay

AFTER_BOOK = "afterBookAppointment"
AFTER_CANCEL = "afterCancelAppointment"


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _local(record: AppointmentRecord, minute: int) -> str:
    wall = datetime.combine(record.on_date, time()) + timedelta(minutes=minute)
    return wall.isoformat(timespec="seconds")


def body(catalog: Catalog, record: AppointmentRecord) -> dict[str, Any]:
    """The original's body of a case's service hook (without `eventSequence`). There are no
    parent cases, organization units or users here: `parentCaseId`, `unitId`,
    `triggeredByUserId` and `triggeredByUserEmail` are null."""
    service = catalog.services.get(record.service_id)
    category = service.category if service is not None else None
    return {
        "caseId": str(record.case_id),
        "parentCaseId": None,
        "referenceDate": _utc(record.starts_at),
        "unitId": None,
        "serviceId": str(record.service_id),
        "serviceCategoryId": str(category.id) if category is not None else None,
        "serviceTypeId": str(record.service_type_id),
        "status": str(record.status),
        "channel": str(record.channel),
        "language": record.language,
        "ticket": {"prefix": record.ticket_prefix, "number": record.ticket_number, "suffix": None},
        "fields": record.fields,
        "tagIds": [str(tag_id) for tag_id in record.tag_ids],
        "customerRecordId": (
            str(record.customer_record_id) if record.customer_record_id is not None else None
        ),
        "triggeredByUserId": None,
        "triggeredByUserEmail": None,
        "appointment": {
            "date": _local(record, 0),
            "cuIndex": record.cu_index,
            "start": record.start_minute,
            "timeLocal": _local(record, record.start_minute),
            "timeUtc": _utc(record.starts_at),
            "timeZoneId": windows_time_zone(record.time_zone),
            "duration": record.duration_minutes,
            "preventSelfCheckIn": record.prevent_self_check_in,
        },
        "eventSequence": None,  # set by the outbox: the case's next
    }


def event_of(catalog: Catalog, hook: str, record: AppointmentRecord) -> outbox.Event | None:
    """`hook`'s event of `record`, or None when the hook is off for its service."""
    service = catalog.services.get(record.service_id)
    if service is None or hook not in service.webhooks:
        return None
    return outbox.Event(
        id=uuid.uuid4(),
        organization_id=catalog.organization_id,
        case_id=record.case_id,
        hook=hook,
        payload=body(catalog, record),
    )


async def announce(
    tx: LockedCalendarDay, catalog: Catalog, hook: str, record: AppointmentRecord
) -> None:
    """Write `hook`'s event of `record` in the calendar-day's transaction, if it is on (one
    round trip then; none otherwise)."""
    event = event_of(catalog, hook, record)
    if event is not None:
        await outbox.enqueue(tx, event)


def of_booking(
    catalog: Catalog,
    row: dict[str, Any],
    service_type_name: str,
    customer_display_name: str | None,
) -> outbox.Event | None:
    """The afterBookAppointment event of a new appointment `row`, written by its INSERT (no
    round trip of its own): the statement sets the ticket number it draws into the body."""
    record = inserted(row, 0, service_type_name, customer_display_name)
    return event_of(catalog, AFTER_BOOK, record)
