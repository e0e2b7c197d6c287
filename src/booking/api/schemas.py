"""Request and response models: the wire contract (camelCase JSON). Separate from ORM models."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
from fastapi import Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from booking.domain import AppointmentStatus, CalendarIssueCode, Channel, CheckInMode, FieldKind
from booking.service.calendars import CalendarOnDate, UnitVacancies
from booking.service.catalog import Catalog, ServiceConfig
from booking.service.wallclock import EARLIEST_DATE, LATEST_DATE, local_datetime, windows_time_zone
from booking.store.appointments import AppointmentRecord
from booking.store.db import uuid_text
from booking.store.holds import HoldRecord

# Named once in the OpenAPI components (openapi.py refers every use to them), so the request and
# the response share one `Channel` and a generated client gets one enum type for each.
ENUM_COMPONENTS: dict[str, dict[str, Any]] = {
    "Channel": {
        "type": "string",
        "enum": [channel.value for channel in Channel],
        "description": "How the appointment is delivered.",
    },
    "AppointmentStatus": {
        "type": "string",
        "enum": [status.value for status in AppointmentStatus],
        "description": "Where the appointment stands; a booking starts as `Planned`.",
    },
}

UtcTimestamp = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-01T09:30:00Z"]}),
]
# A wall-clock reading at the calendar unit: no offset, so not an RFC 3339 date-time.
LocalDateTime = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$",
            "examples": ["2026-12-01T09:30:00"],
        }
    ),
]


def _minute(value: object) -> int:
    """JSON Schema's integer: 570 and 570.0 (but not 570.5, "570" or true)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be an integer")
    if not 0 <= value <= 1439:
        raise PydanticCustomError(
            "minute_range", "Input should be from 0 to 1439 (minutes after local midnight)"
        )
    return value


Minute = Annotated[
    int,
    PlainValidator(_minute),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 0,
            "maximum": 1439,
            "description": "Minutes after local midnight.",
        }
    ),
]


class ApiModel(BaseModel):
    # Every field of an answer is always sent (null when unset, as the original does), so the
    # published answer schemas require each: a typed client gets required members.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _path_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a real calendar date (YYYY-MM-DD)") from None
    if not EARLIEST_DATE <= parsed <= LATEST_DATE:
        raise ValueError(f"must be a date from {EARLIEST_DATE} to {LATEST_DATE}")
    return parsed


_DATE_SCHEMA = {
    "type": "string",
    "format": "date",
    "pattern": f"^{_DATE.pattern}$",
    "description": f"A calendar date from {EARLIEST_DATE} to {LATEST_DATE}.",
    "examples": ["2026-12-01"],
}
PathDate = Annotated[
    date, PlainValidator(_path_date, json_schema_input_type=str), WithJsonSchema(_DATE_SCHEMA)
]
# A date in a body: the same rule. (A body is also dumped, for the Idempotency-Key's
# fingerprint, and a plain validator's serializer takes the parsed date for a string.)
BodyDate = Annotated[date, BeforeValidator(_path_date), WithJsonSchema(_DATE_SCHEMA)]


# A string PostgreSQL cannot store: NUL. (A lone surrogate, which JSON's \ud800 escape can carry
# and UTF-8 cannot encode, pydantic's own str check refuses.) Checked once per value.
def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "String should not contain NUL (\\u0000)")
    return value


Language = Annotated[str, Field(max_length=35), AfterValidator(_without_nul)]
PhoneNumber = Annotated[str, Field(max_length=64), AfterValidator(_without_nul)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_without_nul)]

INT64_MIN, INT64_END = -(2**63), 2**63  # the int64 range is [INT64_MIN, INT64_END)


def _field_value(value: object) -> str | bool | int | float:
    """A `fields` value. Its kind is checked by the service against the field type; here only
    what JSON can carry but the database cannot keep: NUL, lone surrogates (a union member's
    str check lets them through), numbers beyond 64 bits (1e400 reads as infinity, NaN too)."""
    if isinstance(value, str):
        _without_nul(value)
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise PydanticCustomError(
                    "string_unicode", "String should not contain a lone surrogate"
                ) from None
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if INT64_MIN <= value < INT64_END:  # false for NaN
            return value
        raise PydanticCustomError("number_range", "Number should be finite and within 64 bits")
    raise PydanticCustomError("field_value_type", "Input should be a string, number or boolean")


FieldValue = Annotated[
    str | bool | int | float,
    PlainValidator(_field_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "number", "minimum": INT64_MIN, "exclusiveMaximum": INT64_END},
                {"type": "boolean"},
            ]
        }
    ),
]
# What a token can be (Hold a Slot makes URL-safe base64): anything else is refused at the edge.
RESERVATION_TOKEN_PATTERN = "^[A-Za-z0-9_-]{1,64}$"  # noqa: S105 (a shape, not a secret)
ReservationToken = Annotated[
    str,
    Field(
        pattern=RESERVATION_TOKEN_PATTERN,
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
                    "contactPhoneNumber": "020 7946 0018",
                    "contactEmail": "ada@example.com",
                    "fields": {
                        "6f1c2a4e-0000-4000-8000-000000000601": "AB-1234",
                        "6f1c2a4e-0000-4000-8000-000000000605": "Renewal",
                    },
                    "tagIds": ["6f1c2a4e-0000-4000-8000-000000000701"],
                }
            ]
        }
    )

    service_type_id: uuid.UUID
    start_time: Minute
    channel: Channel
    language: Language | None = None
    customer_record_id: uuid.UUID | None = None
    cusotmer_record_id: uuid.UUID | None = Field(
        default=None,
        alias="cusotmerRecordId",
        json_schema_extra={"deprecated": True},
        description="The original API's documented misspelling of customerRecordId; accepted.",
    )
    contact_phone_number: PhoneNumber | None = None
    contact_email: Email | None = None
    bypass_timeslot_check: StrictBool = False
    prevent_self_check_in: StrictBool = False
    fields: Annotated[dict[uuid.UUID, FieldValue], Field(max_length=100)] | None = None
    tag_ids: Annotated[list[uuid.UUID], Field(max_length=100)] | None = None
    reservation_token: ReservationToken | None = None

    # On the second spelling (declared after the first), so the error names the field.
    @field_validator("cusotmer_record_id")
    @classmethod
    def _one_customer_record_id(
        cls, value: uuid.UUID | None, info: ValidationInfo
    ) -> uuid.UUID | None:
        first = info.data.get("customer_record_id")
        if value is not None and first is not None and value != first:
            raise ValueError(
                "customerRecordId and cusotmerRecordId are both given and differ; send one"
            )
        return value

    @property
    def customer_record(self) -> uuid.UUID | None:
        return self.customer_record_id or self.cusotmer_record_id


def _iso_utc(value: datetime) -> str:
    """An instant of the wall clock (whole minutes), as the original writes `timeUtc`."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _timestamp(value: datetime) -> str:
    """When something happened, in UTC with microseconds, as the original writes `statusDate`
    (it shows up to 7 digits; PostgreSQL keeps 6)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _iso_local(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


TIMESTAMP_EXAMPLE = "2026-12-01T07:26:21.123456Z"
# When something happened: UTC with microseconds (see `_timestamp`).
Timestamp = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "date-time", "examples": [TIMESTAMP_EXAMPLE]}),
]
_NO_AGENTS = "Always null: this server does not assign agents (the original's user object)."
WindowsTimeZoneId = Annotated[
    str | None,
    Field(
        examples=["GMT Standard Time"],
        description="The Windows time zone id, as the original writes it, mapped from the IANA "
        "name with CLDR's windowsZones table; null only for a zone that table does not map "
        "(the configuration loader refuses those).",
    ),
]
IanaTimeZoneId = Annotated[
    str, Field(examples=["Europe/London"], description="The IANA time zone name.")
]
NeverSet = Annotated[None, Field(description=_NO_AGENTS)]


class AppointmentTime(ApiModel):
    service_id: uuid.UUID
    date: LocalDateTime = Field(
        examples=["2026-12-01T00:00:00"], description="Local midnight of the date."
    )
    cu_index: int
    start: int = Field(description="Minutes after local midnight: the source of truth.")
    time_local: LocalDateTime = Field(description="The start on the local wall clock.")
    time_utc: UtcTimestamp = Field(description="The start instant in UTC.")
    time_zone_id: WindowsTimeZoneId
    iana_time_zone_id: IanaTimeZoneId
    duration: int
    no_show_probability: float = Field(
        ge=0,
        le=1,
        description="The expected no-show rate of the service type when it was booked.",
    )
    reservation_token: str | None = Field(
        default=None, description="The hold the booking (or its last move) consumed, if any."
    )
    reservation_expiry_date: UtcTimestamp | None = Field(
        default=None, description="When that hold would have ended (UTC)."
    )


class RescheduledFrom(ApiModel):
    date: LocalDateTime = Field(description="Local midnight of the date.")
    cu_index: int
    start: int


class Ticket(ApiModel):
    prefix: str
    suffix: str | None = None
    number: int


class CustomerRef(ApiModel):
    data_table_id: uuid.UUID = Field(description="The organization's customers table.")
    record_id: uuid.UUID
    display_name: str


class AppointmentOut(ApiModel):
    """One appointment: the 201 of Book Appointment and each item of List Appointments."""

    case_id: uuid.UUID
    appointment: AppointmentTime
    ticket: Ticket
    service_category_id: uuid.UUID | None = Field(
        default=None, description="The service's category (configuration); null: none."
    )
    service_category_name: str | None = Field(default=None, description="Its name; null: none.")
    service_type_id: uuid.UUID
    service_type_name: str
    service_type_color_code: str | None = Field(
        default=None, examples=["orange"], description="The service type's color (configuration)."
    )
    status: AppointmentStatus
    status_date: Timestamp = Field(description="When the status was set (UTC, microseconds).")
    reference_date: UtcTimestamp = Field(description="The appointment's instant in UTC.")
    date_opened: Timestamp = Field(description="When it was booked (UTC, microseconds).")
    date_closed: Timestamp | None = Field(
        default=None, description="When it was closed (UTC, microseconds); null: open."
    )
    date_cancelled: Timestamp | None = Field(
        default=None, description="When it was cancelled (UTC, microseconds); null: not."
    )
    assigned_to: NeverSet = None
    locked_by: NeverSet = None
    customer: CustomerRef | None = None
    online_meeting: Annotated[
        None, Field(description="Always null: this server creates no online meetings.")
    ] = None
    channel: Channel
    language: str
    contact_phone_number: str | None = Field(default=None, examples=["+442079460018"])
    contact_email: str | None = None
    prevent_self_check_in: bool
    bypassed_timeslot_check: bool = Field(
        description="True when booked with `bypassTimeslotCheck`: the slot grid and the "
        "calendar's capacity were not checked, so it may start off the grid and overlap more "
        "appointments than the capacity allows (working hours, closed days and the booking "
        "window were checked as always)."
    )
    fields: dict[str, Any]
    tag_ids: list[uuid.UUID]
    rescheduled_from: RescheduledFrom | None = Field(
        default=None, description="Where the last reschedule moved it from; null if never moved."
    )


def appointment_document(r: AppointmentRecord, catalog: Catalog) -> dict[str, Any]:
    """`r` as an `AppointmentOut` (its JSON names, in its order), with what the configuration
    says of its service and service type (from the cached catalog: no database round trip).
    A plain dict, encoded by orjson: building the models and having pydantic encode them cost
    most of an answer's time, for values the service layer has typed already. The test
    `test_an_appointment_document_is_exactly_an_appointment_out` holds the two together."""
    service = catalog.services.get(r.service_id)
    category = service.category if service is not None else None
    service_type = service.types.get(r.service_type_id) if service is not None else None
    starts_at_utc = _iso_utc(r.starts_at)
    return {
        "caseId": r.case_id,
        "appointment": {
            "serviceId": r.service_id,
            "date": _iso_local(local_datetime(r.on_date, 0)),
            "cuIndex": r.cu_index,
            "start": r.start_minute,
            "timeLocal": _iso_local(local_datetime(r.on_date, r.start_minute)),
            "timeUtc": starts_at_utc,
            "timeZoneId": windows_time_zone(r.time_zone),
            "ianaTimeZoneId": r.time_zone,
            "duration": r.duration_minutes,
            "noShowProbability": r.no_show_probability,
            "reservationToken": r.reservation_token,
            "reservationExpiryDate": _iso_utc(r.reservation_expires_at)
            if r.reservation_expires_at
            else None,
        },
        "ticket": {"prefix": r.ticket_prefix, "suffix": None, "number": r.ticket_number},
        "serviceCategoryId": category.id if category is not None else None,
        "serviceCategoryName": category.name if category is not None else None,
        "serviceTypeId": r.service_type_id,
        "serviceTypeName": r.service_type_name,
        "serviceTypeColorCode": service_type.color_code if service_type is not None else None,
        "status": r.status,
        "statusDate": _timestamp(r.status_date),
        "referenceDate": starts_at_utc,
        "dateOpened": _timestamp(r.created_at),
        "dateClosed": _timestamp(r.closed_at) if r.closed_at else None,
        "dateCancelled": _timestamp(r.cancelled_at) if r.cancelled_at else None,
        "assignedTo": None,
        "lockedBy": None,
        "customer": {
            "dataTableId": catalog.customers.id,
            "recordId": r.customer_record_id,
            "displayName": r.customer_display_name,
        }
        if r.customer_record_id is not None and r.customer_display_name is not None
        else None,
        "onlineMeeting": None,
        "channel": r.channel,
        "language": r.language,
        "contactPhoneNumber": r.contact_phone,
        "contactEmail": r.contact_email,
        "preventSelfCheckIn": r.prevent_self_check_in,
        "bypassedTimeslotCheck": r.bypassed_timeslot_check,
        "fields": r.fields,
        "tagIds": r.tag_ids,
        "rescheduledFrom": {
            "date": _iso_local(local_datetime(r.rescheduled_from_date, 0)),
            "cuIndex": r.rescheduled_from_cu_index,
            "start": r.rescheduled_from_start,
        }
        if r.rescheduled_from_date is not None
        and r.rescheduled_from_cu_index is not None
        and r.rescheduled_from_start is not None
        else None,
    }


def appointments_json(records: Sequence[AppointmentRecord], catalog: Catalog) -> bytes:
    return orjson.dumps([appointment_document(r, catalog) for r in records], default=uuid_text)


def appointment_json(record: AppointmentRecord, catalog: Catalog) -> bytes:
    return orjson.dumps(appointment_document(record, catalog), default=uuid_text)


class HoldSlotRequest(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "serviceTypeId": "6f1c2a4e-0000-4000-8000-000000000301",
                    "startTime": 600,
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
    reservation_expiry_date: UtcTimestamp = Field(description="When the hold ends (UTC).")
    service_id: uuid.UUID
    date: LocalDateTime = Field(description="Local midnight of the date.")
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
    field: str = Field(
        description="The field as the client wrote it: a body member (`startTime`, `tagIds.0`, "
        "`fields.<fieldTypeId>`) or a path or query parameter (`date`, `serviceTypeId`); "
        "`body` for the body as a whole."
    )
    message: str
    code: str = Field(description="The rule broken, a stable code (`invalid_phone_number`, ...).")
    type: str = Field(description="The same as `code` (the name these entries had first).")


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


class RangeVacancyOut(ApiModel):
    """The vacant starts of one calendar unit on one date of a range."""

    date: str = Field(
        json_schema_extra={"format": "date"},
        examples=["2026-12-01"],
        description="The calendar's local date, as the calendar paths take it (YYYY-MM-DD).",
    )
    cu_index: int
    duration: int = Field(description="The service type's duration in minutes.")
    slots: list[int] = Field(
        description="Vacant start minutes, ascending; empty when every start is taken or past.",
        examples=[[480, 490]],
    )


class FirstVacancyOut(ApiModel):
    """The earliest vacant start of one calendar unit on one date."""

    date: str = Field(
        json_schema_extra={"format": "date"},
        examples=["2026-12-01"],
        description="The calendar's local date, as the calendar paths take it (YYYY-MM-DD).",
    )
    cu_index: int
    duration: int = Field(description="The service type's duration in minutes.")
    start: int = Field(description="The earliest vacant start, minutes after local midnight.")


def range_vacancies_json(days: Sequence[UnitVacancies], duration: int) -> bytes:
    """`days` as a list of `RangeVacancyOut`, its JSON names in its order: plain documents
    encoded by orjson (a range answers up to 31 x the units; a model each cost milliseconds)."""
    return orjson.dumps(
        [
            {
                "date": day.on_date.isoformat(),
                "cuIndex": day.cu_index,
                "duration": duration,
                "slots": day.slots,
            }
            for day in days
        ]
    )


def first_vacancies_json(days: Sequence[UnitVacancies], duration: int) -> bytes:
    """`days` as a list of `FirstVacancyOut` (each day's first slot), like
    `range_vacancies_json`."""
    return orjson.dumps(
        [
            {
                "date": day.on_date.isoformat(),
                "cuIndex": day.cu_index,
                "duration": duration,
                "start": day.slots[0],
            }
            for day in days
        ]
    )


class MinuteInterval(ApiModel):
    start: int
    end: int


class CalendarStatsOut(ApiModel):
    appointment_count: int
    capacity_minutes: int = Field(
        description="Working minutes of the date times the unit's capacity: the minutes that "
        "could be booked."
    )
    minutes_booked: int
    booking_rate: float = Field(description="minutesBooked / capacityMinutes, not rounded.")
    comp_minutes_booked: float = Field(
        description="The booked minutes weighted by 1 - each appointment's no-show probability."
    )
    comp_booking_rate: float = Field(description="compMinutesBooked / capacityMinutes.")
    is_fully_booked: bool


class CalendarIssueOut(ApiModel):
    code: CalendarIssueCode = Field(description="Stable code of the configuration problem.")
    text: str = Field(description="The problem in words, for people.")


class CalendarOut(ApiModel):
    service_id: uuid.UUID
    date: LocalDateTime = Field(description="Local midnight of the date.")
    cu_index: int
    calendar_timestamp: Timestamp = Field(
        description="The calendar-day's version (UTC, microseconds): moved by every write of "
        "it (booking, cancelling) and by every configuration change; a read never moves it.",
    )
    service_name: str
    service_category_id: uuid.UUID | None = Field(
        default=None, description="The service's category (configuration); null: none."
    )
    service_category_name: str | None = Field(default=None, description="Its name; null: none.")
    capacity: int
    slot_minutes: int
    time_zone_id: WindowsTimeZoneId
    iana_time_zone_id: IanaTimeZoneId
    is_customer_required: bool
    customers_data_table_id: uuid.UUID = Field(description="The organization's customers table.")
    is_phone_number_required: bool
    phone_number_field_type_id: uuid.UUID | None = Field(
        description="The customer field type of kind Phone (the first by position), or null."
    )
    is_email_required: bool
    email_field_type_id: uuid.UUID | None = Field(
        description="The customer field type of kind Email (the first by position), or null."
    )
    working_hours: list[MinuteInterval]
    user: NeverSet = None
    allow_anonymous_agent_booking: bool = Field(description="Configuration, default false.")
    inbox_id: uuid.UUID | None = Field(
        default=None, description="The queue the service's cases go to (configuration)."
    )
    inbox_name: str | None = Field(default=None, description="The inbox's name; null: none.")
    is_in_agents_booking_window: bool = Field(
        description="Some of the date lies in the agents' booking window, the one bookings "
        "over this API use."
    )
    agents_booking_active: bool = Field(
        description="Whether agents (this API) may book the service (configuration); false: "
        "bookings answer 422 agents_booking_inactive and vacancies are empty."
    )
    is_in_self_booking_window: bool = Field(
        description="Some of the date lies in the customers' own booking window."
    )
    self_booking_active: bool = Field(
        description="Whether customers may book the service themselves (configuration)."
    )
    is_closed: bool
    is_past_date: bool
    booking_window_days: int | None = Field(
        description="The agents' booking window in days after today; null: no limit."
    )
    stats: CalendarStatsOut
    issues: list[CalendarIssueOut] = Field(
        description="Configuration problems of this calendar (a unit open on no weekday, a "
        "service without service types, working hours no service type fits in); empty when "
        "there are none."
    )

    @classmethod
    def from_day(cls, day: CalendarOnDate) -> CalendarOut:
        s = day.service
        return cls(
            service_id=s.id,
            date=_iso_local(local_datetime(day.on_date, 0)),
            cu_index=day.cu_index,
            calendar_timestamp=_timestamp(day.timestamp),
            service_name=s.name,
            service_category_id=s.category.id if s.category is not None else None,
            service_category_name=s.category.name if s.category is not None else None,
            capacity=day.capacity,
            slot_minutes=day.slot_minutes,
            time_zone_id=windows_time_zone(day.time_zone),
            iana_time_zone_id=day.time_zone,
            is_customer_required=s.requires_customer,
            customers_data_table_id=day.customers.data_table_id,
            is_phone_number_required=s.requires_phone,
            phone_number_field_type_id=day.customers.phone_field_type_id,
            is_email_required=s.requires_email,
            email_field_type_id=day.customers.email_field_type_id,
            working_hours=[MinuteInterval(start=i.start, end=i.end) for i in day.working_hours],
            allow_anonymous_agent_booking=s.allow_anonymous_agent_booking,
            inbox_id=s.inbox.id if s.inbox is not None else None,
            inbox_name=s.inbox.name if s.inbox is not None else None,
            is_in_agents_booking_window=day.is_in_agents_window,
            agents_booking_active=s.agents_window.active,
            is_in_self_booking_window=day.is_in_self_window,
            self_booking_active=s.self_window.active,
            is_closed=day.is_closed,
            is_past_date=day.is_past_date,
            booking_window_days=s.agents_window.days_ahead,
            stats=CalendarStatsOut(
                appointment_count=day.stats.appointment_count,
                capacity_minutes=day.stats.capacity_minutes,
                minutes_booked=day.stats.minutes_booked,
                booking_rate=day.stats.booking_rate,
                comp_minutes_booked=day.stats.comp_minutes_booked,
                comp_booking_rate=day.stats.comp_booking_rate,
                is_fully_booked=day.stats.is_fully_booked,
            ),
            issues=[CalendarIssueOut(code=i.code, text=i.text) for i in day.issues],
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
    time_zone_id: WindowsTimeZoneId
    iana_time_zone_id: IanaTimeZoneId


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
            booking_window_days=s.agents_window.days_ahead,
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
                    time_zone_id=windows_time_zone(u.zone.key),
                    iana_time_zone_id=u.zone.key,
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


def json_body(content: BaseModel | Sequence[BaseModel]) -> bytes:
    """The JSON of response models, encoded once by pydantic. (A handler that returns a model
    has FastAPI validate it against the response model again and encode it in two steps.)"""
    if isinstance(content, BaseModel):
        return content.model_dump_json(by_alias=True).encode()
    return b"[" + b",".join(m.model_dump_json(by_alias=True).encode() for m in content) + b"]"


def json_response(content: BaseModel | Sequence[BaseModel], status_code: int = 200) -> Response:
    return Response(json_body(content), status_code, media_type="application/json")
