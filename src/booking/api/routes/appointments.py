"""Book, list, read and cancel appointments."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

import asyncpg
from fastapi import APIRouter, Query, Request, Response, status

from booking.api.deps import Caller, Manager, ManagerSendingJson
from booking.api.problems import responses as problems
from booking.api.routes.paths import CALENDAR_UNIT, CaseId, CuIndex, OnDate, ServiceId
from booking.api.schemas import AppointmentOut, BookAppointmentRequest, json_response
from booking.service import booking, calendars, idempotency
from booking.service.appointments import AppointmentRecord
from booking.service.idempotency import StoredResponse

router = APIRouter(tags=["appointments"])

T = TypeVar("T")


# Read from the request rather than declared as a parameter (each declared header costs its own
# parsing on every request); documented in OpenAPI by hand.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": "Retry safely: a repeat with the same key and body replays the first answer "
    "(with `Idempotent-Replayed: true`) instead of booking twice; the same key with another "
    "body is 422. Keys expire after IDEMPOTENCY_TTL_S (default 24 h).",
}
WITH_IDEMPOTENCY_KEY = {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}


def _json(status_code: int, payload: bytes, headers: dict[str, str]) -> Response:
    return Response(payload, status_code, headers, media_type="application/json")


async def _write_once(
    caller: Caller,
    request: Request,
    calendar: tuple[uuid.UUID, int, date],
    fingerprint: Callable[[], str],
    now: datetime,
    check: Callable[[], T],
    write: Callable[[asyncpg.Connection, T], Awaitable[StoredResponse]],
) -> Response:
    """Run `check`, then `write` in the calendar-day's transaction, at most once per
    Idempotency-Key.

    Without a key the checks run before a connection is taken, so the transaction lasts only as
    long as its statements. With a key they run after the key is claimed: a retry replays the
    first answer even when the checks would fail by now (the start time has passed, say)."""
    db = caller.runtime.db
    key = request.headers.get("idempotency-key")
    if key is None:
        checked = check()
        async with booking.calendar_transaction(db, *calendar) as conn:
            answer = await write(conn, checked)
        return _json(answer.status_code, answer.body, answer.headers)
    key = idempotency.check_key(key)
    ttl = timedelta(seconds=caller.runtime.settings.idempotency_ttl_s)
    application_id = caller.application.id
    async with booking.calendar_transaction(db, *calendar) as conn:
        stored = await idempotency.claim(conn, application_id, key, fingerprint(), now, ttl)
        if stored is None:
            answer = await write(conn, check())
            await idempotency.store(conn, application_id, key, answer)
    if stored is not None:
        return _json(stored.status_code, stored.body, {**stored.headers, REPLAYED: "true"})
    return _json(answer.status_code, answer.body, answer.headers)


REPLAYED = "Idempotent-Replayed"


@router.post(
    CALENDAR_UNIT + "/appointments",
    status_code=status.HTTP_201_CREATED,
    response_model=AppointmentOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Book an appointment",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def book_appointment(
    caller: ManagerSendingJson,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    body: BookAppointmentRequest,
    request: Request,
) -> Response:
    command = booking.BookAppointment(
        service_id=service_id,
        on_date=on_date,
        cu_index=cu_index,
        service_type_id=body.service_type_id,
        start_minute=body.start_time,
        channel=body.channel,
        language=body.language,
        customer_record_id=body.customer_record,
        contact_phone=body.contact_phone_number,
        contact_email=body.contact_email,
        bypass_timeslot_check=body.bypass_timeslot_check,
        prevent_self_check_in=body.prevent_self_check_in,
        fields=dict(body.fields or {}),
        tag_ids=list(body.tag_ids or []),
    )
    now = caller.runtime.clock()
    application_id = caller.application.id

    def check() -> booking.CheckedBooking:
        return booking.check_booking(caller.catalog, command, now)

    async def write(conn: asyncpg.Connection, checked: booking.CheckedBooking) -> StoredResponse:
        record = await booking.book_appointment(conn, caller.catalog, application_id, checked, now)
        location = f"/{application_id}/appointments/{record.case_id}"
        return StoredResponse(201, _appointment_json(record), {"Location": location})

    def fingerprint() -> str:
        payload = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return idempotency.request_fingerprint("POST", request.url.path, payload)

    return await _write_once(
        caller, request, (service_id, cu_index, on_date), fingerprint, now, check, write
    )


def _appointment_json(record: AppointmentRecord) -> bytes:
    return AppointmentOut.from_record(record).model_dump_json(by_alias=True).encode()


@router.get(
    CALENDAR_UNIT + "/appointments",
    response_model=list[AppointmentOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="List the appointments of a calendar",
)
async def list_appointments(
    caller: Manager,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    customer_record_id: Annotated[uuid.UUID | None, Query(alias="customerRecordId")] = None,
) -> Response:
    async with caller.runtime.db.read() as conn:
        records = await calendars.list_appointments(
            conn, caller.catalog, service_id, on_date, cu_index, customer_record_id
        )
    return json_response([AppointmentOut.from_record(r) for r in records])


@router.get(
    "/{applicationId}/appointments/{caseId}",
    response_model=AppointmentOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Read one appointment",
)
async def get_appointment(caller: Manager, case_id: CaseId) -> Response:
    async with caller.runtime.db.read() as conn:
        record = await calendars.get_appointment(conn, caller.catalog, case_id)
    return json_response(AppointmentOut.from_record(record))


@router.delete(
    CALENDAR_UNIT + "/appointments/{caseId}",
    response_model=AppointmentOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Cancel an appointment",
    description="Sets status `Cancelled` (the row is kept) and frees the slot at once. "
    "Idempotent: cancelling a cancelled appointment answers 200 with the same body. "
    "A checked-in or already started appointment answers 422.",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def cancel_appointment(
    caller: Manager,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    case_id: CaseId,
    request: Request,
) -> Response:
    now = caller.runtime.clock()

    async def write(conn: asyncpg.Connection, _: None) -> StoredResponse:
        record = await booking.cancel_appointment(
            conn, caller.catalog, service_id, on_date, cu_index, case_id, now
        )
        return StoredResponse(200, _appointment_json(record), {})

    def fingerprint() -> str:
        return idempotency.request_fingerprint("DELETE", request.url.path, None)

    return await _write_once(
        caller, request, (service_id, cu_index, on_date), fingerprint, now, lambda: None, write
    )
