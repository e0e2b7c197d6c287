"""Vacancies of a calendar, and a service's calendars on a date."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from booking.api.conditional import CONDITIONAL_READ, NOT_MODIFIED, conditional_json
from booking.api.deps import Manager, Services
from booking.api.problems import responses as problems
from booking.api.routes.paths import CALENDAR, CALENDAR_UNIT, CuIndex, OnDate, ServiceId
from booking.api.schemas import CalendarOut, VacanciesOut
from booking.domain import CalendarDay
from booking.service import calendars

router = APIRouter(tags=["calendars"])


@router.get(
    CALENDAR_UNIT + "/vacancies",
    response_model=VacanciesOut,
    responses=NOT_MODIFIED | problems(401, 403, 404, 422, 503),
    summary="Vacant start times for a service type",
    description="Past start times of today, starts within the minimum notice, closed dates and "
    "dates outside the agents' booking window give an empty list. Every listed start can be "
    "booked at this moment. Answers with a strong `ETag`; `If-None-Match` with it answers 304 "
    "while the answer is unchanged.",
    openapi_extra=CONDITIONAL_READ,
)
async def list_vacancies(
    caller: Manager,
    services: Services,
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    service_type_id: Annotated[uuid.UUID, Query(alias="serviceTypeId")],
    request: Request,
) -> Response:
    day = CalendarDay(service_id, cu_index, on_date)
    result = await calendars.vacancies(
        services.db, caller.catalog, day, service_type_id, services.clock()
    )
    vacancies = VacanciesOut(
        service_type_id=result.service_type.id,
        service_type_name=result.service_type.name,
        duration=result.service_type.duration_minutes,
        slots=result.slots,
    )
    return conditional_json(request, vacancies)


@router.get(
    CALENDAR,
    response_model=list[CalendarOut],
    responses=NOT_MODIFIED | problems(401, 403, 404, 422, 503),
    summary="The service's calendars on a date, with stats",
    description="Each calendar carries `calendarTimestamp`, moved by every write of its "
    "calendar-day and every configuration change. Answers with a strong `ETag`; "
    "`If-None-Match` with it answers 304 while the answer is unchanged.",
    openapi_extra=CONDITIONAL_READ,
)
async def list_calendars(
    caller: Manager, services: Services, service_id: ServiceId, on_date: OnDate, request: Request
) -> Response:
    days = await calendars.calendars_on_date(
        services.db, caller.catalog, service_id, on_date, services.clock()
    )
    return conditional_json(request, [CalendarOut.from_day(day) for day in days])
