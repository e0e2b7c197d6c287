"""Request and response models: the wire contract (camelCase JSON). Separate from ORM models."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Self

from fastapi import Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from booking.domain import AppointmentStatus, Channel, CheckInMode, FieldKind
from booking.service.calendars import CalendarOnDate
from booking.service.catalog import ServiceConfig
from booking.service.wallclock import local_datetime
from booking.store.appointments import AppointmentRecord
from booking.store.holds import HoldRecord

Minute = Annotated[StrictInt, Field(ge=0, le=1439, description="Minutes after local midnight.")]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _path_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a real calendar date (YYYY-MM-DD)") from None


PathDate = Annotated[
    date,
    PlainValidator(_path_date, json_schema_input_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": f"^{_DATE.pattern}$",
            "examples": ["2026-12-01"],
        }
    ),
]

# A date in a body: the same rule as in a path (a string, YYYY-MM-DD, a real date).
BodyDate = Annotated[date, BeforeValidator(_path_date), Field(examples=["2026-12-01"])]

FieldValue = StrictStr | StrictBool | StrictInt | StrictFloat
ReservationToken = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=64,
        description="A reservation token from Hold a Slot: the booking takes the held place.",
    ),
]
HoldSeconds = Annotated[
    StrictInt,
    Field(ge=1, le=86_400, description="How long to hold; at most the application's maximum."),
]


class BookAppointmentRequest(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "serviceTypeId": "6f1c2a4e-0000-4000-8000-000000000301",
                    "startTime": 570,
                    "channel": "FaceToFace",
                    "language": "en",
                    "customerRecordId": "6f1c2a4e-0000-4000-8000-000000000501",
                    "contactPhoneNumber": "(202) 555-0143",
                    "contactEmail": "ada@example.com",
                    "fields": {"6f1c2a4e-0000-4000-8000-000000000601": "Renewal"},
                    "tagIds": ["6f1c2a4e-0000-4000-8000-000000000701"],
                }
            ]
        }
    )

    service_type_id: uuid.UUID
    start_time: Minute
    channel: Channel
    language: Annotated[str, Field(max_length=35)] | None = None
    customer_record_id: uuid.UUID | None = None
    cusotmer_record_id: uuid.UUID | None = Field(
        default=None,
        alias="cusotmerRecordId",
        json_schema_extra={"deprecated": True},
        description="The original API's documented misspelling of customerRecordId; accepted.",
    )
    contact_phone_number: Annotated[str, Field(max_length=64)] | None = None
    contact_email: Annotated[str, Field(max_length=320)] | None = None
    bypass_timeslot_check: StrictBool = False
    prevent_self_check_in: StrictBool = False
    fields: Annotated[dict[uuid.UUID, FieldValue], Field(max_length=100)] | None = None
    tag_ids: Annotated[list[uuid.UUID], Field(max_length=100)] | None = None
    reservation_token: ReservationToken | None = None

    @model_validator(mode="after")
    def _one_customer_record_id(self) -> Self:
        if (
            self.customer_record_id is not None
            and self.cusotmer_record_id is not None
            and self.customer_record_id != self.cusotmer_record_id
        ):
            raise ValueError(
                "customerRecordId and cusotmerRecordId are both given and differ; send one"
            )
        return self

    @property
    def customer_record(self) -> uuid.UUID | None:
        return self.customer_record_id or self.cusotmer_record_id


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _iso_local(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


class AppointmentTime(ApiModel):
    service_id: uuid.UUID
    date: str = Field(examples=["2026-12-01T00:00:00"], description="Local midnight of the date.")
    cu_index: int
    start: int = Field(description="Minutes after local midnight: the source of truth.")
    duration: int
    time_local: str = Field(examples=["2026-12-01T09:30:00"])
    time_utc: str = Field(examples=["2026-12-01T07:30:00Z"])
    time_zone_id: str = Field(examples=["Europe/London"], description="IANA time zone name.")
    reservation_token: str | None = None
    reservation_expiry_date: str | None = None


class RescheduledFrom(ApiModel):
    date: str = Field(examples=["2026-12-01T00:00:00"], description="Local midnight of the date.")
    cu_index: int
    start: int


class Ticket(ApiModel):
    prefix: str
    suffix: str | None = None
    number: int


class CustomerRef(ApiModel):
    record_id: uuid.UUID
    display_name: str


class AppointmentOut(ApiModel):
    """One appointment: the 201 of Book Appointment and each item of List Appointments."""

    case_id: uuid.UUID
    appointment: AppointmentTime
    ticket: Ticket
    service_type_id: uuid.UUID
    service_type_name: str
    status: AppointmentStatus
    status_date: str
    reference_date: str = Field(description="The appointment's instant in UTC.")
    date_opened: str = Field(description="When it was booked (UTC).")
    date_closed: str | None = None
    date_cancelled: str | None = None
    customer: CustomerRef | None = None
    channel: Channel
    language: str
    contact_phone_number: str | None = Field(default=None, examples=["+12025550143"])
    contact_email: str | None = None
    prevent_self_check_in: bool
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]
    rescheduled_from: RescheduledFrom | None = Field(
        default=None, description="Where the last reschedule moved it from; null if never moved."
    )

    @classmethod
    def from_record(cls, r: AppointmentRecord) -> AppointmentOut:
        # model_construct: the values come from the database, typed by the service layer;
        # validating them again cost a fifth of the response's time.
        return cls.model_construct(
            case_id=r.case_id,
            appointment=AppointmentTime.model_construct(
                service_id=r.service_id,
                date=_iso_local(local_datetime(r.on_date, 0)),
                cu_index=r.cu_index,
                start=r.start_minute,
                duration=r.duration_minutes,
                time_local=_iso_local(local_datetime(r.on_date, r.start_minute)),
                time_utc=_iso_utc(r.starts_at),
                time_zone_id=r.time_zone,
                reservation_token=r.reservation_token,
                reservation_expiry_date=_iso_utc(r.reservation_expires_at)
                if r.reservation_expires_at
                else None,
            ),
            ticket=Ticket.model_construct(prefix=r.ticket_prefix, number=r.ticket_number),
            service_type_id=r.service_type_id,
            service_type_name=r.service_type_name,
            status=r.status,
            status_date=_iso_utc(r.status_date),
            reference_date=_iso_utc(r.starts_at),
            date_opened=_iso_utc(r.created_at),
            date_closed=_iso_utc(r.closed_at) if r.closed_at else None,
            date_cancelled=_iso_utc(r.cancelled_at) if r.cancelled_at else None,
            customer=CustomerRef.model_construct(
                record_id=r.customer_record_id, display_name=r.customer_display_name
            )
            if r.customer_record_id is not None and r.customer_display_name is not None
            else None,
            channel=r.channel,
            language=r.language,
            contact_phone_number=r.contact_phone,
            contact_email=r.contact_email,
            prevent_self_check_in=r.prevent_self_check_in,
            fields=r.fields,
            tag_ids=r.tag_ids,
            rescheduled_from=_rescheduled_from(r),
        )


def _rescheduled_from(r: AppointmentRecord) -> RescheduledFrom | None:
    if (
        r.rescheduled_from_date is None
        or r.rescheduled_from_cu_index is None
        or r.rescheduled_from_start is None
    ):
        return None
    return RescheduledFrom.model_construct(
        date=_iso_local(local_datetime(r.rescheduled_from_date, 0)),
        cu_index=r.rescheduled_from_cu_index,
        start=r.rescheduled_from_start,
    )


class HoldSlotRequest(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "serviceTypeId": "6f1c2a4e-0000-4000-8000-000000000301",
                    "startTime": 570,
                    "channel": "FaceToFace",
                    "holdSeconds": 300,
                }
            ]
        }
    )

    service_type_id: uuid.UUID
    start_time: Minute
    channel: Channel
    hold_seconds: HoldSeconds | None = None


class ExtendHoldRequest(ApiModel):
    hold_seconds: HoldSeconds | None = Field(
        default=None,
        description="Hold this long from now; absent: as long as the application's maximum "
        "(counted from the hold's creation) allows.",
    )


class HoldOut(ApiModel):
    """A slot hold: its token and expiry, and the place it keeps."""

    reservation_token: str
    reservation_expiry_date: str = Field(examples=["2026-12-01T07:05:00Z"])
    service_id: uuid.UUID
    date: str = Field(examples=["2026-12-01T00:00:00"], description="Local midnight of the date.")
    cu_index: int
    start: int
    duration: int
    service_type_id: uuid.UUID
    channel: Channel

    @classmethod
    def from_record(cls, h: HoldRecord) -> HoldOut:
        return cls.model_construct(
            reservation_token=h.token,
            reservation_expiry_date=_iso_utc(h.expires_at),
            service_id=h.service_id,
            date=_iso_local(local_datetime(h.on_date, 0)),
            cu_index=h.cu_index,
            start=h.start_minute,
            duration=h.duration_minutes,
            service_type_id=h.service_type_id,
            channel=h.channel,
        )


class RescheduleRequest(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"date": "2026-12-02", "cuIndex": 0, "startTime": 600}]}
    )

    date: BodyDate
    cu_index: Annotated[StrictInt, Field(ge=0, le=1_000_000)]
    start_time: Minute
    reservation_token: ReservationToken | None = None
    bypass_timeslot_check: StrictBool = False


class CheckInRequest(ApiModel):
    mode: CheckInMode


class FieldError(BaseModel):
    field: str = Field(description="Dotted location, e.g. `body.startTime` or `path.date`.")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine-readable `code`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    nearest_vacancies: list[int] | None = Field(default=None, alias="nearestVacancies")


class VacanciesOut(ApiModel):
    service_type_id: uuid.UUID
    service_type_name: str
    duration: int
    slots: list[int] = Field(description="Vacant start minutes, ascending.", examples=[[480, 490]])


class MinuteInterval(ApiModel):
    start: int
    end: int


class CalendarStatsOut(ApiModel):
    appointment_count: int
    capacity_minutes: int
    minutes_booked: int
    booking_rate: float
    is_fully_booked: bool


class CalendarOut(ApiModel):
    service_id: uuid.UUID
    date: str
    cu_index: int
    service_name: str
    capacity: int
    slot_minutes: int
    time_zone_id: str
    is_customer_required: bool
    is_phone_number_required: bool
    is_email_required: bool
    working_hours: list[MinuteInterval]
    is_closed: bool
    is_past_date: bool
    is_in_booking_window: bool
    booking_window_days: int | None
    stats: CalendarStatsOut

    @classmethod
    def from_day(cls, day: CalendarOnDate) -> CalendarOut:
        s = day.service
        return cls(
            service_id=s.id,
            date=_iso_local(local_datetime(day.on_date, 0)),
            cu_index=day.cu_index,
            service_name=s.name,
            capacity=day.capacity,
            slot_minutes=day.slot_minutes,
            time_zone_id=day.time_zone,
            is_customer_required=s.requires_customer,
            is_phone_number_required=s.requires_phone,
            is_email_required=s.requires_email,
            working_hours=[MinuteInterval(start=i.start, end=i.end) for i in day.working_hours],
            is_closed=day.is_closed,
            is_past_date=day.is_past_date,
            is_in_booking_window=day.is_in_booking_window,
            booking_window_days=s.booking_window_days,
            stats=CalendarStatsOut(
                appointment_count=day.stats.appointment_count,
                capacity_minutes=day.stats.capacity_minutes,
                minutes_booked=day.stats.minutes_booked,
                booking_rate=day.stats.booking_rate,
                is_fully_booked=day.stats.is_fully_booked,
            ),
        )


class ServiceTypeOut(ApiModel):
    id: uuid.UUID
    name: str
    duration: int
    channels: list[Channel]


class CalendarUnitOut(ApiModel):
    cu_index: int
    capacity: int
    slot_minutes: int
    time_zone_id: str


class ServiceOut(ApiModel):
    id: uuid.UUID
    name: str
    ticket_prefix: str
    is_customer_required: bool
    is_phone_number_required: bool
    is_email_required: bool
    booking_window_days: int | None
    service_types: list[ServiceTypeOut]
    calendar_units: list[CalendarUnitOut]

    @classmethod
    def from_config(cls, s: ServiceConfig) -> ServiceOut:
        return cls(
            id=s.id,
            name=s.name,
            ticket_prefix=s.ticket_prefix,
            is_customer_required=s.requires_customer,
            is_phone_number_required=s.requires_phone,
            is_email_required=s.requires_email,
            booking_window_days=s.booking_window_days,
            service_types=[
                ServiceTypeOut(
                    id=t.id, name=t.name, duration=t.duration_minutes, channels=list(t.channels)
                )
                for t in sorted(s.types.values(), key=lambda t: (t.name, str(t.id)))
            ],
            calendar_units=[
                CalendarUnitOut(
                    cu_index=u.cu_index,
                    capacity=u.capacity,
                    slot_minutes=u.slot_minutes,
                    time_zone_id=u.zone.key,
                )
                for _, u in sorted(s.units.items())
            ],
        )


class FieldTypeOut(ApiModel):
    id: uuid.UUID
    name: str
    kind: FieldKind
    options: list[str]
    required: bool


class TagOut(ApiModel):
    id: uuid.UUID
    name: str


class LanguagesOut(ApiModel):
    default_language: str
    supported_languages: list[str]


def json_response(content: BaseModel | Sequence[BaseModel], status_code: int = 200) -> Response:
    """The JSON of response models, encoded once by pydantic. (A handler that returns a model
    has FastAPI validate it against the response model again and encode it in two steps.)"""
    if isinstance(content, BaseModel):
        body = content.model_dump_json(by_alias=True).encode()
    else:
        body = b"[" + b",".join(m.model_dump_json(by_alias=True).encode() for m in content) + b"]"
    return Response(body, status_code, media_type="application/json")
