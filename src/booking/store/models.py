"""The schema. Invariants live here as named Postgres constraints; Alembic migrations mirror it
(a test checks that autogenerate finds no difference)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from booking.domain import (
    CHECKED_IN_STATUSES,
    AppointmentStatus,
    Channel,
    CustomerFieldKind,
    FieldKind,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHANNELS = tuple(Channel)
FIELD_KINDS = tuple(FieldKind)
CUSTOMER_FIELD_KINDS = tuple(CustomerFieldKind)
STATUSES = tuple(AppointmentStatus)
INITIAL_CASE_STATUSES = tuple(CHECKED_IN_STATUSES)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({_quoted(values)})"


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    time_zone: Mapped[str] = mapped_column(Text)  # IANA name
    default_language: Mapped[str] = mapped_column(Text)
    supported_languages: Mapped[list[str]] = mapped_column(ARRAY(Text))
    default_phone_region: Mapped[str] = mapped_column(Text)  # ISO 3166 alpha-2
    # The configuration's version: moved by every load that changes the organization's part of
    # the file (compared by `configuration_digest`); every calendar's timestamp is at least it.
    configured_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )
    configuration_digest: Mapped[str | None] = mapped_column(Text)
    # The organization's one customers table: its stable id (the original's dataTableId) and
    # the template of a record's displayName, e.g. "{{first-name}} {{last-name}}".
    customers_table_id: Mapped[uuid.UUID] = mapped_column(
        UUID, unique=True, server_default=text("gen_random_uuid()")
    )
    customer_display_name: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "default_language = ANY (supported_languages)", name="default_language_supported"
        ),
        CheckConstraint("default_phone_region ~ '^[A-Z]{2}$'", name="phone_region_alpha2"),
    )


class RegisteredApplication(Base):
    __tablename__ = "registered_application"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    client_id: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # How long a slot hold of this application lasts when the request names no length, and
    # the longest it may last in all (its one extension included).
    hold_default_seconds: Mapped[int] = mapped_column(Integer, server_default=text("300"))
    hold_max_seconds: Mapped[int] = mapped_column(Integer, server_default=text("900"))

    __table_args__ = (
        CheckConstraint(
            "hold_default_seconds >= 1 AND hold_default_seconds <= hold_max_seconds",
            name="hold_seconds",
        ),
    )


class ServiceCategory(Base):
    __tablename__ = "service_category"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(Text)


class Service(Base):
    __tablename__ = "service"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    service_category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("service_category.id"))
    requires_customer: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    requires_phone: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    requires_email: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    ticket_prefix: Mapped[str] = mapped_column(Text, server_default=text("''"))
    allow_anonymous_agent_booking: Mapped[bool] = mapped_column(
        Boolean, server_default=text("false")
    )
    # The service hooks switched on (afterBookAppointment, ...): see WebhookEndpoint.
    webhooks: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # The queue the service's cases go to (the original's inbox), both or neither.
    inbox_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    inbox_name: Mapped[str | None] = mapped_column(Text)
    # The agents' booking window, the one bookings over this API use: how many days after today
    # (in the calendar's zone) may be booked (NULL: no limit), and how many minutes ahead of
    # its start an appointment must be booked at least.
    agents_booking_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    booking_window_days: Mapped[int | None] = mapped_column(Integer)
    minimum_notice_minutes: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The customers' own (self-booking) window, reported for their front ends.
    self_booking_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    self_booking_window_days: Mapped[int | None] = mapped_column(Integer)
    self_minimum_notice_minutes: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The status a check-in moves a case to (the original's "initial case status").
    initial_case_status: Mapped[str] = mapped_column(
        Text, server_default=text(f"'{AppointmentStatus.WAITING}'")
    )
    # Check-in is open from this many minutes before the start until this many after it.
    check_in_minutes_before: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    check_in_minutes_after: Mapped[int] = mapped_column(Integer, server_default=text("15"))

    __table_args__ = (
        CheckConstraint("booking_window_days >= 0", name="booking_window_non_negative"),
        CheckConstraint("minimum_notice_minutes >= 0", name="minimum_notice_non_negative"),
        CheckConstraint("self_booking_window_days >= 0", name="self_booking_window_non_negative"),
        CheckConstraint(
            "self_minimum_notice_minutes >= 0", name="self_minimum_notice_non_negative"
        ),
        CheckConstraint("(inbox_id IS NULL) = (inbox_name IS NULL)", name="inbox_id_and_name"),
        CheckConstraint(
            _in("initial_case_status", INITIAL_CASE_STATUSES), name="initial_case_status_known"
        ),
        CheckConstraint(
            "check_in_minutes_before >= 0 AND check_in_minutes_after >= 0",
            name="check_in_window_non_negative",
        ),
    )


class ServiceType(Base):
    __tablename__ = "service_type"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("service.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    channels: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # The expected share of its appointments whose customer does not come (0 to 1).
    no_show_rate: Mapped[float] = mapped_column(Double, server_default=text("0"))
    color_code: Mapped[str | None] = mapped_column(Text)  # e.g. "orange"

    __table_args__ = (
        CheckConstraint("duration_minutes > 0 AND duration_minutes <= 1440", name="duration"),
        CheckConstraint("no_show_rate >= 0 AND no_show_rate <= 1", name="no_show_rate"),
        CheckConstraint(
            f"channels <@ ARRAY[{_quoted(CHANNELS)}]::text[]",
            name="channels_known",
        ),
    )


class CalendarUnit(Base):
    __tablename__ = "calendar_unit"

    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("service.id"), primary_key=True)
    cu_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    time_zone: Mapped[str | None] = mapped_column(Text)  # NULL: the organization's zone

    __table_args__ = (
        CheckConstraint("cu_index >= 0", name="cu_index_non_negative"),
        CheckConstraint("slot_minutes > 0 AND slot_minutes <= 1440", name="slot_minutes"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
    )


class WorkingHours(Base):
    """One interval of a weekday; several per weekday, the gaps between them are breaks."""

    __tablename__ = "working_hours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[uuid.UUID] = mapped_column(UUID)
    cu_index: Mapped[int] = mapped_column(Integer)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # ISO: 1 = Monday ... 7 = Sunday
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        ForeignKeyConstraint(
            ["service_id", "cu_index"],
            ["calendar_unit.service_id", "calendar_unit.cu_index"],
            ondelete="CASCADE",
        ),
        CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday"),
        CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name="interval",
        ),
        Index(None, "service_id", "cu_index", "weekday"),
    )


class CalendarException(Base):
    """A date that differs from the weekly hours: closed, or open with its own hours."""

    __tablename__ = "calendar_exception"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[uuid.UUID] = mapped_column(UUID)
    cu_index: Mapped[int] = mapped_column(Integer)
    on_date: Mapped[date] = mapped_column(Date)
    closed: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        ForeignKeyConstraint(
            ["service_id", "cu_index"],
            ["calendar_unit.service_id", "calendar_unit.cu_index"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("service_id", "cu_index", "on_date"),
    )


class ExceptionHours(Base):
    __tablename__ = "exception_hours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[int] = mapped_column(
        ForeignKey("calendar_exception.id", ondelete="CASCADE"), index=True
    )
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name="interval",
        ),
    )


class CustomerRecord(Base):
    """A customer of the organization. Erasing one clears its personal data (fields, display
    name) and keeps the row, which its appointments still name."""

    __tablename__ = "customer_record"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(Text)  # NULL once erased
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    date_created: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    date_updated: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "erased_at IS NULL OR (display_name IS NULL AND fields = '{}')", name="erased_is_empty"
        ),
    )


class CustomerFieldType(Base):
    """A field of the organization's customers table (not a booking's field type)."""

    __tablename__ = "customer_field_type"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    name: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    is_key: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    position: Mapped[int] = mapped_column(Integer)
    options: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    color_code: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("organization_id", "slug"),
        CheckConstraint(_in("kind", CUSTOMER_FIELD_KINDS), name="kind_known"),
        CheckConstraint(
            f"kind <> '{CustomerFieldKind.CHOICE}' OR cardinality(options) > 0",
            name="choice_has_options",
        ),
    )


class CustomerKey(Base):
    """One key-field value of a customer record, by its digest: the primary key makes each key
    field's values unique per organization (field types belong to one) under any concurrency,
    and finding a record by key field is a lookup of it."""

    __tablename__ = "customer_key"

    field_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_field_type.id", ondelete="CASCADE"), primary_key=True
    )
    value_digest: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    record_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customer_record.id", ondelete="CASCADE"), index=True
    )


class FieldType(Base):
    __tablename__ = "field_type"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        CheckConstraint(_in("kind", FIELD_KINDS), name="kind_known"),
        CheckConstraint(
            f"kind <> '{FieldKind.CHOICE}' OR cardinality(options) > 0", name="choice_has_options"
        ),
    )


class Tag(Base):
    __tablename__ = "tag"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(Text)


class Appointment(Base):
    """A booking (a "case" in the original). Never deleted: cancelling sets the status."""

    __tablename__ = "appointment"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)  # caseId
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(UUID)
    cu_index: Mapped[int] = mapped_column(Integer)
    on_date: Mapped[date] = mapped_column(Date)  # the calendar's local date
    start_minute: Mapped[int] = mapped_column(Integer)  # wall-clock minutes after local midnight
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # The service type's no-show rate when it was booked.
    no_show_probability: Mapped[float] = mapped_column(Double, server_default=text("0"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the instant (UTC)
    time_zone: Mapped[str] = mapped_column(Text)
    service_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("service_type.id"))
    status: Mapped[str] = mapped_column(Text)
    status_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ticket_prefix: Mapped[str] = mapped_column(Text)
    ticket_number: Mapped[int] = mapped_column(Integer)
    customer_record_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customer_record.id"), index=True
    )
    channel: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(Text)
    contact_phone: Mapped[str | None] = mapped_column(Text)  # E.164
    contact_email: Mapped[str | None] = mapped_column(Text)  # normalized
    prevent_self_check_in: Mapped[bool] = mapped_column(Boolean)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    tag_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID), server_default=text("'{}'"))
    bypassed_timeslot_check: Mapped[bool] = mapped_column(Boolean)
    created_by_application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registered_application.id")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The slot hold this booking consumed, if any.
    reservation_token: Mapped[str | None] = mapped_column(Text)
    reservation_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the last reschedule moved it from (all NULL when it never moved).
    rescheduled_from_date: Mapped[date | None] = mapped_column(Date)
    rescheduled_from_cu_index: Mapped[int | None] = mapped_column(Integer)
    rescheduled_from_start: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        ForeignKeyConstraint(
            ["service_id", "cu_index"], ["calendar_unit.service_id", "calendar_unit.cu_index"]
        ),
        CheckConstraint("start_minute BETWEEN 0 AND 1439", name="start_minute"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint(_in("status", STATUSES), name="status_known"),
        CheckConstraint(_in("channel", CHANNELS), name="channel_known"),
        CheckConstraint("ticket_number >= 1", name="ticket_number_positive"),
        CheckConstraint(
            f"(status = '{AppointmentStatus.CANCELLED}') = (cancelled_at IS NOT NULL)",
            name="cancelled_at_iff_cancelled",
        ),
        # Ticket numbers are unique per service and date.
        UniqueConstraint("service_id", "on_date", "ticket_number"),
        # The booking hot path: the occupied intervals of one calendar on one date.
        Index(
            "ix_appointment_calendar_day",
            "service_id",
            "on_date",
            "cu_index",
            "start_minute",
        ),
    )


class SlotHold(Base):
    """A slot held for a while (the original's reservation), so that a customer can give their
    details or pay meanwhile. It occupies its place in the calendar-day while it is live: not
    released, not consumed by a booking, and its expiry ahead of the reading statement's `now`.
    Nothing has to delete an expired hold for its place to be free again; a purge only tidies."""

    __tablename__ = "slot_hold"

    token: Mapped[str] = mapped_column(Text, primary_key=True)  # 192 random bits, URL-safe
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("registered_application.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(UUID)
    cu_index: Mapped[int] = mapped_column(Integer)
    on_date: Mapped[date] = mapped_column(Date)
    start_minute: Mapped[int] = mapped_column(Integer)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    service_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("service_type.id"))
    channel: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    extended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The appointment that consumed it (no foreign key: it is set before that row is inserted,
    # in the same transaction).
    consumed_by: Mapped[uuid.UUID | None] = mapped_column(UUID)

    __table_args__ = (
        ForeignKeyConstraint(
            ["service_id", "cu_index"], ["calendar_unit.service_id", "calendar_unit.cu_index"]
        ),
        CheckConstraint("start_minute BETWEEN 0 AND 1439", name="start_minute"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint(_in("channel", CHANNELS), name="channel_known"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        # The hot path reads a calendar-day's holds with its appointments.
        Index("ix_slot_hold_calendar_day", "service_id", "on_date", "cu_index", "start_minute"),
    )


class TicketCounter(Base):
    """The last ticket number given per service and date; taken inside the booking transaction,
    so a rolled-back booking gives its number back (no gaps)."""

    __tablename__ = "ticket_counter"

    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("service.id"), primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("last_number >= 1", name="last_number_positive"),)


class CalendarDayStamp(Base):
    """The version of a calendar-day: moved by every write of it, in the write's transaction
    (see `booking.store.db.lock_calendar_day`). A calendar-day never written has no row. No
    foreign key: the lock statement stamps whatever calendar-day it locks, and a stamp refers
    to nothing that could go wrong (calendar units are never deleted)."""

    __tablename__ = "calendar_day_stamp"

    service_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    cu_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    stamped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """A stored answer to a request sent with an Idempotency-Key, per application."""

    __tablename__ = "idempotency_record"

    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registered_application.id"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)  # NULL while the first is running
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


WEBHOOK_STATES = ("pending", "delivered", "failed")


class WebhookEndpoint(Base):
    """An organization's server that service hooks call (the original's webhook settings).
    The secrets sign every call and are never answered or logged; `gone_at`: the receiver
    answered 410 Gone, and nothing is sent to it until an operator redelivers."""

    __tablename__ = "webhook_endpoint"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean)
    base_url: Mapped[str] = mapped_column(Text)
    authorization_scheme: Mapped[str] = mapped_column(Text)  # None | HMAC
    secrets: Mapped[list[str]] = mapped_column(ARRAY(Text))  # newest first
    before_hook_timeout_ms: Mapped[int] = mapped_column(Integer, server_default=text("2000"))
    on_before_hook_failure: Mapped[str] = mapped_column(Text, server_default=text("'refuse'"))
    gone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "authorization_scheme IN ('None', 'HMAC')", name="authorization_scheme_known"
        ),
        CheckConstraint("cardinality(secrets) >= 1", name="has_secret"),
        CheckConstraint(
            "on_before_hook_failure IN ('refuse', 'book')", name="on_before_hook_failure_known"
        ),
        CheckConstraint("before_hook_timeout_ms > 0", name="before_hook_timeout_positive"),
    )


class WebhookEvent(Base):
    """The outbox: one row per event to announce, written in the transaction of the change it
    announces (so it exists if and only if the change committed), delivered at least once by
    `booking.service.webhooks.delivery`. `sequence` counts the events of one case (its
    `eventSequence`); `leased_until`: a process is delivering it until then."""

    __tablename__ = "webhook_event"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)  # webhook-id
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    case_id: Mapped[uuid.UUID] = mapped_column(UUID)
    sequence: Mapped[int] = mapped_column(Integer)
    hook: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )
    state: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_in("state", WEBHOOK_STATES), name="state_known"),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
        UniqueConstraint("case_id", "sequence"),
        # The delivery's claim: pending events, oldest due first.
        Index(
            "ix_webhook_event_pending",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One delivery attempt of an event: what the receiver answered, how long it took, what
    went wrong, when the next try is due (NULL: none)."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_event.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
