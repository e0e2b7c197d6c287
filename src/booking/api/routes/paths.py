"""Route parameters shared by the calendar routes: declared on each handler itself (not as a
dependency, which costs more per request), validated by FastAPI."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

from booking.api.schemas import PathDate

ServiceId = Annotated[uuid.UUID, Path(alias="serviceId")]
OnDate = Annotated[PathDate, Path(alias="date")]
CuIndex = Annotated[int, Path(alias="cuIndex", ge=0, le=1_000_000)]
CaseId = Annotated[uuid.UUID, Path(alias="caseId")]

SERVICE_CALENDARS = "/{applicationId}/calendars/{serviceId}"
CALENDAR = SERVICE_CALENDARS + "/{date}"
CALENDAR_UNIT = CALENDAR + "/{cuIndex}"
