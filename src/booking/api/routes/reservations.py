"""Slot holds (the original's reservations): hold a slot, release it, extend it once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response, status

from booking.api.deps import Manager, ManagerSendingJson, Services
from booking.api.idempotency import WITH_IDEMPOTENCY_KEY, StoredResponse, idempotency_key, respond
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.routes.paths import CALENDAR_UNIT, CuIndex, OnDate, ServiceId
from booking.api.schemas import (
    RESERVATION_TOKEN_PATTERN,
    ExtendHoldRequest,
    HoldOut,
    HoldSlotRequest,
    json_response,
)
from booking.domain import CalendarDay
from booking.service import holds
from booking.service.commands import ExtendHold, HoldSlot, ReleaseHold
from booking.store.holds import HoldRecord

router = resource_router("reservations")

Token = Annotated[str, Path(alias="reservationToken", pattern=RESERVATION_TOKEN_PATTERN)]


def _held(record: HoldRecord) -> StoredResponse:
    body = HoldOut.from_record(record).model_dump_json(by_alias=True).encode()
    return StoredResponse(status.HTTP_201_CREATED, body, {})


@router.post(
    CALENDAR_UNIT + "/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Hold a slot",
    description="Keeps a vacant slot for a while (the application's default, 5 minutes unless "
    "configured; `holdSeconds` up to its maximum, 15 minutes unless configured), so that a "
    "booking with the `reservationToken` can take it later. A live hold occupies its place in "
    "vacancies, stats and bookings; once expired it frees the place at once. Every booking rule "
    "that needs no customer data applies; 409 with `nearestVacancies` when it is not vacant.",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def hold_slot(
    caller: ManagerSendingJson,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    body: HoldSlotRequest,
    request: Request,
) -> Response:
    command = HoldSlot(
        day=CalendarDay(service_id, cu_index, on_date),
        service_type_id=body.service_type_id,
        start_minute=body.start_time,
        channel=body.channel,
        hold_seconds=body.hold_seconds,
    )
    now = services.clock()
    key = idempotency_key(
        request, caller.application.id, services.settings.idempotency_ttl_s, now, body, _held
    )
    outcome = await holds.hold(services.db, caller.catalog, caller.application, command, now, key)
    return respond(outcome, key, _held)


@router.delete(
    CALENDAR_UNIT + "/reservations/{reservationToken}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404, 409, 422, 503),
    summary="Release a hold",
    description="Frees the held place now. Releasing an ended hold answers 204 too; a hold "
    "that a booking used answers 409 `reservation_consumed`.",
)
async def release_reservation(
    caller: Manager,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    token: Token,
) -> Response:
    command = ReleaseHold(CalendarDay(service_id, cu_index, on_date), token)
    await holds.release(services.db, caller.catalog, caller.application, command, services.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    CALENDAR_UNIT + "/reservations/{reservationToken}",
    response_model=HoldOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Extend a hold, once",
    description="A live hold can be extended once, to at most the application's maximum "
    "counted from its creation. A second extension is 409 `reservation_already_extended`; an "
    "ended hold is 409 `reservation_expired`.",
)
async def extend_reservation(
    caller: ManagerSendingJson,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    token: Token,
    body: ExtendHoldRequest,
) -> Response:
    command = ExtendHold(CalendarDay(service_id, cu_index, on_date), token, body.hold_seconds)
    record = await holds.extend(
        services.db, caller.catalog, caller.application, command, services.clock()
    )
    return json_response(HoldOut.from_record(record))
