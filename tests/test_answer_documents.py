"""The appointment answers are built as plain documents (encoded by orjson, for speed) and
published as the `AppointmentOut` schema: each document is exactly that model, name for name,
in its order, value for value."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from asyncpg.pgproto.pgproto import UUID as DRIVER_UUID  # ids as read from the database
from pydantic import BaseModel

from booking.api.schemas import (
    AppointmentOut,
    FirstVacancyOut,
    RangeVacancyOut,
    appointment_document,
    appointment_json,
    first_vacancies_json,
    range_vacancies_json,
)
from booking.domain import AppointmentStatus, Channel
from booking.service.calendars import UnitVacancies
from booking.store.appointments import AppointmentRecord

SERVICE_ID, TYPE_ID, TABLE_ID = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
CATALOG: Any = SimpleNamespace(
    services={
        SERVICE_ID: SimpleNamespace(
            category=SimpleNamespace(id=uuid.uuid4(), name="Permits"),
            types={TYPE_ID: SimpleNamespace(color_code="orange")},
        )
    },
    customers=SimpleNamespace(id=TABLE_ID),
)
BOOKED = AppointmentRecord(
    case_id=uuid.uuid4(),
    service_id=SERVICE_ID,
    on_date=date(2026, 12, 2),
    cu_index=3,
    start_minute=570,
    duration_minutes=20,
    no_show_probability=0.125,
    starts_at=AT,
    time_zone="Europe/London",
    ticket_prefix="A",
    ticket_number=7,
    service_type_id=TYPE_ID,
    service_type_name="Passport",
    status=AppointmentStatus.PLANNED,
    status_date=AT - timedelta(days=1, microseconds=-17),
    created_at=AT - timedelta(days=1),
    closed_at=None,
    cancelled_at=None,
    customer_record_id=None,
    customer_display_name=None,
    channel=Channel.FACE_TO_FACE,
    language="en",
    contact_phone="+442079460018",
    contact_email="a@example.com",
    prevent_self_check_in=False,
    bypassed_timeslot_check=False,
    fields={"0f0e0d0c-0000-0000-0000-000000000001": "x", "n": 1.5},
    tag_ids=[uuid.uuid4()],
    reservation_token=None,
    reservation_expires_at=None,
    rescheduled_from_date=None,
    rescheduled_from_cu_index=None,
    rescheduled_from_start=None,
)
EVERYTHING_SET = replace(
    BOOKED,
    status=AppointmentStatus.CANCELLED,
    closed_at=AT,
    cancelled_at=AT,
    customer_record_id=uuid.uuid4(),
    customer_display_name="Ada L.",
    reservation_token="tok",
    reservation_expires_at=AT - timedelta(minutes=5),
    rescheduled_from_date=date(2026, 12, 1),
    rescheduled_from_cu_index=1,
    rescheduled_from_start=600,
    tag_ids=[DRIVER_UUID(str(uuid.uuid4()))],
)
ELSEWHERE = replace(BOOKED, service_id=uuid.uuid4(), contact_phone=None, contact_email=None)


def names_in_order(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


@pytest.mark.parametrize(
    "record",
    [BOOKED, EVERYTHING_SET, ELSEWHERE],
    ids=["booked", "everything-set", "unknown-service"],
)
def test_an_appointment_document_is_exactly_an_appointment_out(record: AppointmentRecord) -> None:
    document = orjson.loads(appointment_json(record, CATALOG))
    model = AppointmentOut.model_validate(document)
    assert list(document) == names_in_order(AppointmentOut)
    assert list(document["appointment"]) == names_in_order(type(model.appointment))
    assert orjson.loads(model.model_dump_json(by_alias=True)) == document


def test_every_optional_part_of_an_appointment_is_filled_when_it_exists() -> None:
    document = orjson.loads(appointment_json(EVERYTHING_SET, CATALOG))
    assert document["customer"] == {
        "dataTableId": str(TABLE_ID),
        "recordId": str(EVERYTHING_SET.customer_record_id),
        "displayName": "Ada L.",
    }
    assert document["rescheduledFrom"] == {
        "date": "2026-12-01T00:00:00",
        "cuIndex": 1,
        "start": 600,
    }
    assert document["appointment"]["reservationExpiryDate"] == "2026-12-02T09:25:00Z"
    assert document["dateCancelled"] == "2026-12-02T09:30:00.000000Z"
    assert appointment_document(ELSEWHERE, CATALOG)["serviceCategoryId"] is None


DAYS = [
    UnitVacancies(date(2026, 12, 2), 0, [480, 490]),
    UnitVacancies(date(2026, 12, 2), 3, [600]),
    UnitVacancies(date(2026, 12, 3), 0, [510, 520, 530]),
]


def test_range_and_first_vacancies_documents_are_exactly_their_models() -> None:
    ranged = orjson.loads(range_vacancies_json(DAYS, 10))
    firsts = orjson.loads(first_vacancies_json(DAYS, 10))
    for documents, model in ((ranged, RangeVacancyOut), (firsts, FirstVacancyOut)):
        for document in documents:
            assert list(document) == names_in_order(model)
            assert model.model_validate(document).model_dump(by_alias=True) == document
    assert ranged[2] == {
        "date": "2026-12-03",
        "cuIndex": 0,
        "duration": 10,
        "slots": [510, 520, 530],
    }
    assert [f["start"] for f in firsts] == [480, 600, 510]
