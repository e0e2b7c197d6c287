"""Vacancies of a calendar, and a service's calendars on a date."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, Response
from pydantic import Field

from booking.api.conditional import CONDITIONAL_READ, NOT_MODIFIED, conditional_json
from booking.api.deps import Manager, Services
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.routes.paths import (
    CALENDAR,
    CALENDAR_UNIT,
    SERVICE_CALENDARS,
    CuIndex,
    OnDate,
    ServiceId,
)
from booking.api.schemas import (
    CalendarOut,
    FirstVacancyOut,
    PathDate,
    RangeVacancyOut,
    VacanciesOut,
    first_vacancies_json,
    range_vacancies_json,
)
from booking.domain import CalendarDay, Channel
from booking.service import calendars
from booking.service.commands import ListFirstVacancies, ListRangeVacancies

router = resource_router("calendars")

ServiceTypeId = Annotated[uuid.UUID, Query(alias="serviceTypeId")]
# Repeat it for several units (`cuIndex=0&cuIndex=2`); absent: every unit of the service.
CuIndexes = Annotated[
    list[Annotated[int, Field(ge=0, le=1_000_000)]] | None,
    Query(alias="cuIndex", max_length=1000, description="Only these calendar units (repeat it)."),
]
ChannelFilter = Annotated[
    Channel | None,
    Query(description="Only where a booking with this channel would be accepted."),
]

# The range routes come before the calendars of a date, whose `{date}` would take "vacancies".


@router.get(
    SERVICE_CALENDARS + "/vacancies",
    response_model=list[RangeVacancyOut],
    responses=NOT_MODIFIED | problems(401, 403, 404, 422, 503),
    summary="Vacant start times of every calendar unit on every date of a range",
    description=f"`from` and `to` are inclusive local dates, at most "
    f"{calendars.MAX_RANGE_DAYS} days. One item per calendar unit and date, by date then "
    "`cuIndex`, each with exactly the starts List Vacancies gives for it; closed dates, past "
    "dates and dates outside the agents' booking window (or before its minimum notice) give "
    "no item, an open date whose starts are all taken or past an item with no slots. Holds "
    "occupy their place. With `channel`, nothing when the service type does not offer it. "
    "Answers with a strong `ETag`; `If-None-Match` with it answers 304 while the answer is "
    "unchanged.",
    openapi_extra=CONDITIONAL_READ,
)
async def list_range_vacancies(
    caller: Manager,
    services: Services,
    service_id: ServiceId,
    service_type_id: ServiceTypeId,
    first_date: Annotated[PathDate, Query(alias="from")],
    last_date: Annotated[PathDate, Query(alias="to")],
    request: Request,
    cu_indexes: CuIndexes = None,
    channel: ChannelFilter = None,
) -> Response:
    query = ListRangeVacancies(
        service_id, service_type_id, first_date, last_date, tuple(cu_indexes or ()), channel
    )
    result = await calendars.range_vacancies(services.db, caller.catalog, query, services.clock())
    body = range_vacancies_json(result.days, result.service_type.duration_minutes)
    return conditional_json(request, body)


@router.get(
    SERVICE_CALENDARS + "/first-vacancies",
    response_model=list[FirstVacancyOut],
    responses=NOT_MODIFIED | problems(401, 403, 404, 422, 503),
    summary="The first dates with vacant time, and each unit's earliest start on them",
    description=f"The first `days` dates from `from` on (looking at most "
    f"{calendars.FIRST_VACANCIES_HORIZON_DAYS} days ahead) on which some calendar unit has a "
    "vacant start, with one item per unit that has one on that date: its earliest start, by "
    "date then `cuIndex`. The same vacancies as List Vacancies. Answers with a strong `ETag`; "
    "`If-None-Match` with it answers 304 while the answer is unchanged.",
    openapi_extra=CONDITIONAL_READ,
)
async def list_first_vacancies(
    caller: Manager,
    services: Services,
    service_id: ServiceId,
    service_type_id: ServiceTypeId,
    from_date: Annotated[PathDate, Query(alias="from")],
    request: Request,
    days: Annotated[int, Query(ge=1, le=calendars.MAX_RANGE_DAYS)] = 5,
    cu_indexes: CuIndexes = None,
    channel: ChannelFilter = None,
) -> Response:
    query = ListFirstVacancies(
        service_id, service_type_id, from_date, days, tuple(cu_indexes or ()), channel
    )
    result = await calendars.first_vacancies(services.db, caller.catalog, query, services.clock())
    body = first_vacancies_json(result.days, result.service_type.duration_minutes)
    return conditional_json(request, body)


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
