"""Book, list, read, cancel, check in and reschedule appointments: parse, build the command,
call the service, map its outcome to HTTP."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

from fastapi import Query, Request, Response, status

from booking.api.conditional import CONDITIONAL_READ, NOT_MODIFIED, conditional_json
from booking.api.deps import Manager, ManagerSendingJson, Services
from booking.api.idempotency import WITH_IDEMPOTENCY_KEY, StoredResponse, idempotency_key, respond
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.routes.paths import CALENDAR_UNIT, CaseId, CuIndex, OnDate, ServiceId
from booking.api.schemas import (
    AppointmentOut,
    BookAppointmentRequest,
    CheckInRequest,
    RescheduleRequest,
    appointment_json,
    appointments_json,
)
from booking.domain import CalendarDay
from booking.service import appointments
from booking.service.catalog import Catalog
from booking.service.commands import (
    BookAppointment,
    CancelAppointment,
    CheckIn,
    RescheduleAppointment,
)
from booking.store.appointments import AppointmentRecord

router = resource_router("appointments")


def _created(
    application_id: uuid.UUID, catalog: Catalog, record: AppointmentRecord
) -> StoredResponse:
    location = f"/{application_id}/appointments/{record.case_id}"
    return StoredResponse(201, appointment_json(record, catalog), {"Location": location})


def _changed(catalog: Catalog, record: AppointmentRecord) -> StoredResponse:
    return StoredResponse(200, appointment_json(record, catalog), {})


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
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    body: BookAppointmentRequest,
    request: Request,
) -> Response:
    command = BookAppointment(
        day=CalendarDay(service_id, cu_index, on_date),
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
        reservation_token=body.reservation_token,
    )
    now = services.clock()
    application_id = caller.application.id
    render = partial(_created, application_id, caller.catalog)
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, body, render
    )
    outcome = await appointments.book(
        services.db, caller.catalog, application_id, command, now, key, services.before_hooks
    )
    return respond(outcome, key, render)


@router.get(
    CALENDAR_UNIT + "/appointments",
    response_model=list[AppointmentOut],
    responses=NOT_MODIFIED | problems(401, 403, 404, 422, 503),
    summary="List the appointments of a calendar",
    description="Answers with a strong `ETag`; `If-None-Match` with it answers 304 while the "
    "list is unchanged.",
    openapi_extra=CONDITIONAL_READ,
)
async def list_appointments(
    caller: Manager,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    request: Request,
    customer_record_id: Annotated[uuid.UUID | None, Query(alias="customerRecordId")] = None,
) -> Response:
    day = CalendarDay(service_id, cu_index, on_date)
    catalog = caller.catalog
    records = await appointments.of_calendar_day(services.db, catalog, day, customer_record_id)
    return conditional_json(request, appointments_json(records, catalog))


@router.get(
    "/{applicationId}/appointments/{caseId}",
    response_model=AppointmentOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Read one appointment",
)
async def get_appointment(caller: Manager, services: Services, case_id: CaseId) -> Response:
    record = await appointments.get(services.db, caller.catalog, case_id)
    return Response(appointment_json(record, caller.catalog), media_type="application/json")


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
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    case_id: CaseId,
    request: Request,
) -> Response:
    command = CancelAppointment(CalendarDay(service_id, cu_index, on_date), case_id)
    now = services.clock()
    application_id = caller.application.id
    render = partial(_changed, caller.catalog)
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, None, render
    )
    outcome = await appointments.cancel(services.db, caller.catalog, command, now, key)
    return respond(outcome, key, render)


@router.post(
    CALENDAR_UNIT + "/appointments/{caseId}/actions/checkIn",
    response_model=AppointmentOut,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 503),
    summary="Check an appointment in",
    description="Moves a `Planned` appointment to the service's initial case status "
    "(`Waiting`, or `Pending`), inside the service's check-in window. `Kiosk` mode is refused "
    "(403 `self_check_in_not_allowed`) when the appointment has `preventSelfCheckIn`; `Agent` "
    "mode is allowed. Checking in again answers 200 with the same body. With the "
    "organization's `beforeCheckIn` hook on, its receiver may replace `fields` and `tagIds` "
    "(checked like a booking's) or cancel the check-in (422 `cancelled_by_webhook`).",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def check_in_appointment(
    caller: ManagerSendingJson,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    case_id: CaseId,
    body: CheckInRequest,
    request: Request,
) -> Response:
    command = CheckIn(CalendarDay(service_id, cu_index, on_date), case_id, body.mode)
    now = services.clock()
    application_id = caller.application.id
    render = partial(_changed, caller.catalog)
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, body, render
    )
    outcome = await appointments.check_in(
        services.db, caller.catalog, command, now, key, services.before_hooks
    )
    return respond(outcome, key, render)


@router.post(
    CALENDAR_UNIT + "/appointments/{caseId}/actions/reschedule",
    response_model=AppointmentOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Reschedule an appointment",
    description="Moves a `Planned` appointment to another start, calendar unit or date of the "
    "same service, keeping its `caseId` and service type; `rescheduledFrom` says where it was. "
    "The new place is taken and the old one freed at once; on 409 or 422 nothing changes. "
    "Within its date it keeps its ticket number; moved to another date it takes that date's "
    "next one.",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def reschedule_appointment(
    caller: ManagerSendingJson,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    case_id: CaseId,
    body: RescheduleRequest,
    request: Request,
) -> Response:
    command = RescheduleAppointment(
        day=CalendarDay(service_id, cu_index, on_date),
        case_id=case_id,
        to=CalendarDay(service_id, body.cu_index, body.date),
        start_minute=body.start_time,
        reservation_token=body.reservation_token,
        bypass_timeslot_check=body.bypass_timeslot_check,
    )
    now = services.clock()
    application_id = caller.application.id
    render = partial(_changed, caller.catalog)
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, body, render
    )
    outcome = await appointments.reschedule(
        services.db, caller.catalog, application_id, command, now, key
    )
    return respond(outcome, key, render)
