"""The events a change announces, and the one call a use case's in-lock step makes for each:
`await announce(tx, catalog, Hook.AFTER_CANCEL, record)`. The event is written only when the
organization's webhooks are enabled and the hook is switched on for the service (then one
round trip, in the change's transaction); otherwise nothing at all is done. A booking's event
costs no round trip: `of_booking` hands it to the appointment's INSERT, which writes both.

The body is the original's After Book Appointment body (see the contract, "Webhooks") with
`eventSequence`, the event's number among its case's events (1, 2, ...): a receiver that sees
a lower number than one it already has holds a stale event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from booking.domain import Hook
from booking.service.catalog import Catalog
from booking.service.wallclock import windows_time_zone
from booking.store import outbox
from booking.store.appointments import AppointmentRecord, inserted
from booking.store.db import LockedCalendarDay


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(
    catalog: Catalog, record: AppointmentRecord, previous: AppointmentRecord | None = None
) -> dict[str, Any]:
    """The original's body of a case's service hook (without `eventSequence`). There are no
    parent cases, organization units or users here: `parentCaseId`, `unitId`,
    `triggeredByUserId` and `triggeredByUserEmail` are null. With `previous` (the appointment
    before a reschedule), `previousAppointment` says where it was, in `appointment`'s shape.
    Ids stay UUIDs: the outbox's JSON encoder (orjson) writes them as the usual strings,
    faster than `str` would."""
    service = catalog.services.get(record.service_id)
    category = service.category if service is not None else None
    appointment = _place(record)
    appointment["preventSelfCheckIn"] = record.prevent_self_check_in
    payload: dict[str, Any] = {
        "caseId": record.case_id,
        "parentCaseId": None,
        "referenceDate": appointment["timeUtc"],
        "unitId": None,
        "serviceId": record.service_id,
        "serviceCategoryId": category.id if category is not None else None,
        "serviceTypeId": record.service_type_id,
        "status": str(record.status),
        "channel": str(record.channel),
        "language": record.language,
        "ticket": {"prefix": record.ticket_prefix, "number": record.ticket_number, "suffix": None},
        "fields": record.fields,
        "tagIds": record.tag_ids,
        "customerRecordId": record.customer_record_id,
        "triggeredByUserId": None,
        "triggeredByUserEmail": None,
        "appointment": appointment,
    }
    if previous is not None:
        payload["previousAppointment"] = _place(previous)
    payload["eventSequence"] = None  # set by the outbox: the case's next
    return payload


def _place(record: AppointmentRecord) -> dict[str, Any]:
    """Where and when `record` is: its calendar unit, date, start and length."""
    day = record.on_date.isoformat()
    hours, minutes = divmod(record.start_minute, 60)
    return {
        "date": f"{day}T00:00:00",
        "cuIndex": record.cu_index,
        "start": record.start_minute,
        # start_minute < 1440: the wall time is on the date itself
        "timeLocal": f"{day}T{hours:02d}:{minutes:02d}:00",
        "timeUtc": _utc(record.starts_at),
        "timeZoneId": windows_time_zone(record.time_zone),
        "duration": record.duration_minutes,
    }


def event_of(
    catalog: Catalog,
    hook: Hook,
    record: AppointmentRecord,
    previous: AppointmentRecord | None = None,
) -> outbox.Event | None:
    """`hook`'s event of `record` (see `body` for `previous`), or None when the hook is off
    for its service."""
    service = catalog.services.get(record.service_id)
    if service is None or hook not in service.webhooks:
        return None
    return outbox.Event(
        id=uuid.uuid4(),
        organization_id=catalog.organization_id,
        case_id=record.case_id,
        hook=hook,
        payload=body(catalog, record, previous),
    )


async def announce(
    tx: LockedCalendarDay,
    catalog: Catalog,
    hook: Hook,
    record: AppointmentRecord,
    previous: AppointmentRecord | None = None,
) -> None:
    """Write `hook`'s event of `record` in the calendar-day's transaction, if it is on (one
    round trip then; none otherwise)."""
    event = event_of(catalog, hook, record, previous)
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
    return event_of(catalog, Hook.AFTER_BOOK, record)
