"""Vacancies of a calendar, and a service's calendars on a date."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from booking.api.deps import CatalogDep, RuntimeDep
from booking.api.problems import responses as problems
from booking.api.routes.paths import CALENDAR, CALENDAR_UNIT, CalendarDateParams, CalendarParams
from booking.api.schemas import CalendarOut, VacanciesOut
from booking.service import calendars

router = APIRouter(tags=["calendars"])


@router.get(
    CALENDAR_UNIT + "/vacancies",
    response_model=VacanciesOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Vacant start times for a service type",
    description="Past start times of today, closed dates and dates outside the booking window "
    "give an empty list. Every listed start can be booked at this moment.",
)
async def get_vacancies(
    calendar: CalendarParams,
    service_type_id: Annotated[uuid.UUID, Query(alias="serviceTypeId")],
    catalog: CatalogDep,
    runtime: RuntimeDep,
) -> VacanciesOut:
    async with runtime.reader.connect() as conn:
        result = await calendars.vacancies(
            conn,
            catalog,
            calendar.service_id,
            calendar.on_date,
            calendar.cu_index,
            service_type_id,
            runtime.clock(),
        )
    return VacanciesOut(
        service_type_id=result.service_type.id,
        service_type_name=result.service_type.name,
        duration=result.service_type.duration_minutes,
        slots=result.slots,
    )


@router.get(
    CALENDAR,
    response_model=list[CalendarOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="The service's calendars on a date, with stats",
)
async def get_calendars(
    calendar: CalendarDateParams,
    catalog: CatalogDep,
    runtime: RuntimeDep,
) -> list[CalendarOut]:
    async with runtime.reader.connect() as conn:
        days = await calendars.calendars_on_date(
            conn, catalog, calendar.service_id, calendar.on_date, runtime.clock()
        )
    return [CalendarOut.from_day(day) for day in days]
