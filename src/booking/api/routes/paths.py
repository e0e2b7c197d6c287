"""Route parameters shared by every calendar route, validated once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Path

from booking.api.schemas import PathDate


@dataclass(frozen=True, slots=True)
class CalendarDate:
    service_id: uuid.UUID
    on_date: date


@dataclass(frozen=True, slots=True)
class CalendarPath:
    service_id: uuid.UUID
    on_date: date
    cu_index: int


async def calendar_date(
    service_id: Annotated[uuid.UUID, Path(alias="serviceId")],
    on_date: Annotated[PathDate, Path(alias="date")],
) -> CalendarDate:
    return CalendarDate(service_id, on_date)  # type: ignore[arg-type]  # validated into a date


async def calendar_path(
    service_id: Annotated[uuid.UUID, Path(alias="serviceId")],
    on_date: Annotated[PathDate, Path(alias="date")],
    cu_index: Annotated[int, Path(alias="cuIndex", ge=0, le=1_000_000)],
) -> CalendarPath:
    return CalendarPath(service_id, on_date, cu_index)  # type: ignore[arg-type]


CalendarDateParams = Annotated[CalendarDate, Depends(calendar_date)]
CalendarParams = Annotated[CalendarPath, Depends(calendar_path)]

CALENDAR = "/{applicationId}/calendars/{serviceId}/{date}"
CALENDAR_UNIT = CALENDAR + "/{cuIndex}"
