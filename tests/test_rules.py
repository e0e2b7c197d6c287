"""The booking rules, without HTTP or a database: a command and a configuration in, the rule it
breaks (its code and field) or the checked booking out."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from booking.domain import AppointmentStatus, CalendarDay, Channel, FieldKind
from booking.service import rules
from booking.service.availability import Interval
from booking.service.catalog import (
    BookingWindow,
    CalendarUnitConfig,
    Catalog,
    CustomersTable,
    FieldTypeConfig,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.commands import BookAppointment
from booking.service.errors import Conflict, DomainError, NotFound, RuleViolation
from booking.store.appointments import INSERTED_COLUMNS, AppointmentRecord

LONDON = ZoneInfo("Europe/London")
TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
TOMORROW = TODAY + timedelta(days=1)
HOURS = (Interval(480, 720), Interval(780, 1020))

SERVICE_ID = uuid.uuid4()
TYPE_ID = uuid.uuid4()
TEXT_FIELD = uuid.uuid4()
CHOICE_FIELD = uuid.uuid4()
REQUIRED_FIELD = uuid.uuid4()
TAG = uuid.uuid4()


def catalog(
    *,
    window: int | None = 60,
    requires_phone: bool = False,
    requires_email: bool = False,
    requires_customer: bool = False,
    channels: tuple[Channel, ...] = (Channel.FACE_TO_FACE,),
    closed: tuple[date, ...] = (),
    required_field: bool = False,
) -> Catalog:
    """One service with one 30-minute type and one 10-minute-grid unit, open 08-12 and 13-17."""
    unit = CalendarUnitConfig(
        cu_index=0,
        slot_minutes=10,
        capacity=1,
        zone=LONDON,
        weekly={weekday: HOURS for weekday in range(1, 8)},
        exceptions={d: () for d in closed},
    )
    service = ServiceConfig(
        id=SERVICE_ID,
        name="Passport renewal",
        requires_customer=requires_customer,
        requires_phone=requires_phone,
        requires_email=requires_email,
        ticket_prefix="A",
        agents_window=BookingWindow(days_ahead=window),
        self_window=BookingWindow(),
        types={TYPE_ID: ServiceTypeConfig(TYPE_ID, "Visit", 30, channels)},
        units={0: unit},
    )
    field_types = {
        TEXT_FIELD: FieldTypeConfig(TEXT_FIELD, "Note", FieldKind.TEXT, (), False),
        CHOICE_FIELD: FieldTypeConfig(CHOICE_FIELD, "Kind", FieldKind.CHOICE, ("a", "b"), False),
    }
    if required_field:
        field_types[REQUIRED_FIELD] = FieldTypeConfig(
            REQUIRED_FIELD, "Reference", FieldKind.TEXT, (), True
        )
    return Catalog(
        organization_id=uuid.uuid4(),
        zone=LONDON,
        default_language="en",
        supported_languages=("en", "fr"),
        default_phone_region="US",
        services={SERVICE_ID: service},
        field_types=field_types,
        tags={TAG: "VIP"},
        configured_at=NOW,
        customers=CustomersTable(uuid.uuid4(), None, {}),
    )


def command(**changes: Any) -> BookAppointment:
    on_date = changes.pop("on_date", TOMORROW)
    cu_index = changes.pop("cu_index", 0)
    service_id = changes.pop("service_id", SERVICE_ID)
    values: dict[str, Any] = {
        "day": CalendarDay(service_id, cu_index, on_date),
        "service_type_id": TYPE_ID,
        "start_minute": 570,
        "channel": Channel.FACE_TO_FACE,
    }
    return BookAppointment(**(values | changes))


REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any], type[DomainError], str, str | None]] = [
    # (case, catalog options, command changes, error, code, field)
    (
        "unknown service",
        {},
        {"service_id": uuid.uuid4()},
        NotFound,
        "service_not_found",
        "serviceId",
    ),
    ("unknown unit", {}, {"cu_index": 7}, NotFound, "calendar_unit_not_found", "cuIndex"),
    (
        "unknown type",
        {},
        {"service_type_id": uuid.uuid4()},
        NotFound,
        "service_type_not_found",
        "serviceTypeId",
    ),
    ("channel", {}, {"channel": Channel.VIDEO}, RuleViolation, "channel_not_supported", "channel"),
    ("language", {}, {"language": "de"}, RuleViolation, "language_not_supported", "language"),
    (
        "customer",
        {"requires_customer": True},
        {},
        RuleViolation,
        "customer_required",
        "customerRecordId",
    ),
    ("phone", {"requires_phone": True}, {}, RuleViolation, "phone_required", "contactPhoneNumber"),
    ("email", {"requires_email": True}, {}, RuleViolation, "email_required", "contactEmail"),
    (
        "bad phone",
        {},
        {"contact_phone": "12"},
        RuleViolation,
        "invalid_phone_number",
        "contactPhoneNumber",
    ),
    ("bad email", {}, {"contact_email": "ada@"}, RuleViolation, "invalid_email", "contactEmail"),
    ("field type", {}, {"fields": {uuid.uuid4(): "x"}}, NotFound, "field_type_not_found", None),
    (
        "choice",
        {},
        {"fields": {CHOICE_FIELD: "c"}},
        RuleViolation,
        "invalid_field_value",
        f"fields.{CHOICE_FIELD}",
    ),
    (
        "text",
        {},
        {"fields": {TEXT_FIELD: 3}},
        RuleViolation,
        "invalid_field_value",
        f"fields.{TEXT_FIELD}",
    ),
    (
        "required field",
        {"required_field": True},
        {},
        RuleViolation,
        "required_field_missing",
        f"fields.{REQUIRED_FIELD}",
    ),
    ("tag", {}, {"tag_ids": [uuid.uuid4()]}, NotFound, "tag_not_found", "tagIds"),
    ("tag twice", {}, {"tag_ids": [TAG, TAG]}, RuleViolation, "duplicate_tag_ids", "tagIds"),
    (
        "past date",
        {},
        {"on_date": TODAY - timedelta(days=1)},
        RuleViolation,
        "date_in_past",
        "date",
    ),
    (
        "window",
        {"window": 7},
        {"on_date": TODAY + timedelta(days=8)},
        RuleViolation,
        "outside_booking_window",
        "date",
    ),
    (
        "passed",
        {},
        {"on_date": TODAY, "start_minute": 420},
        RuleViolation,
        "start_time_passed",
        "startTime",
    ),
    ("closed", {"closed": (TOMORROW,)}, {}, RuleViolation, "closed_date", "date"),
    ("hours", {}, {"start_minute": 700}, RuleViolation, "outside_working_hours", "startTime"),
    ("grid", {}, {"start_minute": 575}, RuleViolation, "start_not_on_grid", "startTime"),
]


@pytest.mark.parametrize(
    ("options", "changes", "error", "code", "field"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_booking_that_breaks_a_rule_is_refused_with_its_code_and_field(
    options: dict[str, Any],
    changes: dict[str, Any],
    error: type[DomainError],
    code: str,
    field: str | None,
) -> None:
    with pytest.raises(error) as refused:
        rules.check_booking(catalog(**options), command(**changes), NOW)
    assert refused.value.code == code
    if field is not None:
        assert refused.value.field == field


UNKNOWN = uuid.uuid4()
SPRING_FORWARD = date(2027, 3, 28)  # London's clocks skip 01:00-02:00

BROKEN_TOGETHER: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str]]]] = [
    # (case, catalog options, command changes, every (code, field) broken, in order)
    (
        "six independent rules",
        {},
        {
            "channel": Channel.VIDEO,
            "language": "de",
            "contact_phone": "12",
            "contact_email": "ada@",
            "fields": {CHOICE_FIELD: "c"},
            "tag_ids": [UNKNOWN],
        },
        [
            ("channel_not_supported", "channel"),
            ("language_not_supported", "language"),
            ("invalid_phone_number", "contactPhoneNumber"),
            ("invalid_email", "contactEmail"),
            ("invalid_field_value", f"fields.{CHOICE_FIELD}"),
            ("tag_not_found", "tagIds"),
        ],
    ),
    (
        "every required datum",
        {"requires_customer": True, "requires_phone": True, "requires_email": True},
        {},
        [
            ("customer_required", "customerRecordId"),
            ("phone_required", "contactPhoneNumber"),
            ("email_required", "contactEmail"),
        ],
    ),
    (
        "each field its own",
        {"required_field": True},
        {"fields": {UNKNOWN: "x", TEXT_FIELD: 3}},
        [
            ("field_type_not_found", f"fields.{UNKNOWN}"),
            ("invalid_field_value", f"fields.{TEXT_FIELD}"),
            ("required_field_missing", f"fields.{REQUIRED_FIELD}"),
        ],
    ),
    (
        "a bad value of a required field is not also missing",
        {"required_field": True},
        {"fields": {REQUIRED_FIELD: 3}},
        [("invalid_field_value", f"fields.{REQUIRED_FIELD}")],
    ),
    (
        "duplicate and unknown tags, each unknown once",
        {},
        {"tag_ids": [TAG, TAG, UNKNOWN, UNKNOWN]},
        [("duplicate_tag_ids", "tagIds"), ("tag_not_found", "tagIds")],
    ),
    (
        "the window and the grid",
        {"window": 7},
        {"on_date": TODAY + timedelta(days=8), "start_minute": 575},
        [("outside_booking_window", "date"), ("start_not_on_grid", "startTime")],
    ),
    (
        "a past date implies its start has passed",
        {},
        {"on_date": TODAY - timedelta(days=1), "start_minute": 700},
        [("date_in_past", "date"), ("outside_working_hours", "startTime")],
    ),
    (
        "a closed day has no hours to miss",
        {"closed": (TOMORROW,)},
        {"start_minute": 700},
        [("closed_date", "date")],
    ),
    (
        "a passed start is not also outside the hours",
        {},
        {"on_date": TODAY, "start_minute": 420, "language": "de"},
        [("language_not_supported", "language"), ("start_time_passed", "startTime")],
    ),
    (
        "a wall time that does not exist, and a tag",
        {"window": None},
        {"on_date": SPRING_FORWARD, "start_minute": 70, "tag_ids": [UNKNOWN]},
        [("tag_not_found", "tagIds"), ("nonexistent_local_time", "startTime")],
    ),
]


@pytest.mark.parametrize(
    ("options", "changes", "expected"),
    [case[1:] for case in BROKEN_TOGETHER],
    ids=[case[0] for case in BROKEN_TOGETHER],
)
def test_every_independent_broken_rule_is_in_the_one_error(
    options: dict[str, Any], changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(DomainError) as refused:
        rules.check_booking(catalog(**options), command(**changes), NOW)
    error = refused.value
    assert (error.code, error.field) == expected[0]
    if len(expected) == 1:
        assert error.errors == ()
    else:
        assert type(error) is RuleViolation  # 422, whatever the kinds of the rules listed
        assert [(e.code, e.field) for e in error.errors] == expected


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"service_id": UNKNOWN}, "service_not_found"),
        ({"cu_index": 7}, "calendar_unit_not_found"),
        ({"service_type_id": UNKNOWN}, "service_type_not_found"),
    ],
)
def test_what_every_other_rule_depends_on_is_refused_alone(
    changes: dict[str, Any], code: str
) -> None:
    broken_too = {"channel": Channel.VIDEO, "language": "de", "tag_ids": [UNKNOWN]}
    with pytest.raises(NotFound) as refused:
        rules.check_booking(catalog(), command(**changes, **broken_too), NOW)
    assert refused.value.code == code
    assert refused.value.errors == ()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"tag_ids": [UNKNOWN]}, "tag_not_found"),
        ({"fields": {UNKNOWN: "x"}}, "field_type_not_found"),
    ],
)
def test_an_unknown_tag_or_field_type_alone_stays_not_found(
    changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(NotFound) as refused:
        rules.check_booking(catalog(), command(**changes), NOW)
    assert refused.value.code == code
    assert refused.value.errors == ()


def test_a_valid_booking_builds_no_error_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collecting the broken rules costs a valid booking nothing: no error is made and caught."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("an error was built for a valid booking")

    monkeypatch.setattr(DomainError, "__init__", refuse)
    rules.check_booking(
        catalog(required_field=True),
        command(
            language="fr",
            contact_phone="(202) 555-0143",
            contact_email="ada@example.com",
            fields={REQUIRED_FIELD: "R-1", CHOICE_FIELD: "a"},
            tag_ids=[TAG],
        ),
        NOW,
    )


def test_a_valid_booking_is_checked_with_normalized_contact_details() -> None:
    checked = rules.check_booking(
        catalog(),
        command(contact_phone="(202) 555-0143", contact_email="Ada@Example.com", tag_ids=[TAG]),
        NOW,
    )
    assert checked.phone == "+12025550143"
    assert checked.email == "Ada@example.com"
    assert checked.language == "en"
    assert checked.starts_at == datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("on_date", "window", "refused"),
    [
        (TODAY - timedelta(days=1), None, "date_in_past"),
        (TODAY, 0, None),
        (TODAY + timedelta(days=1), 0, "outside_booking_window"),
        (TODAY + timedelta(days=60), 60, None),
        (TODAY + timedelta(days=61), 60, "outside_booking_window"),
        (date(9999, 12, 31), 60, "outside_booking_window"),
        (date(9999, 12, 31), None, None),
    ],
)
def test_the_booking_window_is_one_rule(
    on_date: date, window: int | None, refused: str | None
) -> None:
    service = catalog(window=window).services[SERVICE_ID]
    refusal = rules.date_refusal(service, on_date, TODAY)
    assert (refusal.code if refusal else None) == refused


def test_a_taken_slot_is_a_conflict_with_the_nearest_vacancies() -> None:
    checked = rules.check_booking(catalog(), command(), NOW)
    rules.check_vacant(checked, [Interval(600, 630)], NOW)  # no overlap: vacant
    with pytest.raises(Conflict) as taken:
        rules.check_vacant(checked, [Interval(570, 600)], NOW)
    assert taken.value.code == "slot_not_vacant"
    assert taken.value.extra == {"nearestVacancies": [540, 600, 530]}


def test_the_new_row_gives_every_inserted_column() -> None:
    checked = rules.check_booking(catalog(), command(), NOW)
    row = rules.new_appointment(checked, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), NOW)
    assert set(row) == set(INSERTED_COLUMNS)
    assert row["status"] is AppointmentStatus.PLANNED


def record(status: AppointmentStatus, starts_at: datetime) -> AppointmentRecord:
    return AppointmentRecord(
        case_id=uuid.uuid4(),
        service_id=SERVICE_ID,
        on_date=TOMORROW,
        cu_index=0,
        start_minute=570,
        duration_minutes=30,
        no_show_probability=0.0,
        starts_at=starts_at,
        time_zone="Europe/London",
        ticket_prefix="A",
        ticket_number=1,
        service_type_id=TYPE_ID,
        service_type_name="Visit",
        status=status,
        status_date=NOW,
        created_at=NOW,
        closed_at=None,
        cancelled_at=None,
        customer_record_id=None,
        customer_display_name=None,
        channel=Channel.FACE_TO_FACE,
        language="en",
        contact_phone=None,
        contact_email=None,
        prevent_self_check_in=False,
        bypassed_timeslot_check=False,
        fields={},
        tag_ids=[],
    )


LATER = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "starts_at", "outcome"),
    [
        (AppointmentStatus.PLANNED, LATER, True),
        (AppointmentStatus.CANCELLED, LATER, False),
        (AppointmentStatus.CHECKED_IN, LATER, "appointment_checked_in"),
        (AppointmentStatus.COMPLETED, LATER, "appointment_closed"),
        (AppointmentStatus.NO_SHOW, LATER, "appointment_closed"),
        (AppointmentStatus.PLANNED, NOW, "appointment_in_past"),
    ],
)
def test_only_a_planned_appointment_that_has_not_started_is_cancelled(
    status: AppointmentStatus, starts_at: datetime, outcome: bool | str
) -> None:
    appointment = record(status, starts_at)
    if isinstance(outcome, bool):
        assert rules.needs_cancelling(appointment, NOW) is outcome
    else:
        with pytest.raises(RuleViolation) as refused:
            rules.needs_cancelling(appointment, NOW)
        assert refused.value.code == outcome


def test_a_record_field_list_is_the_statement_column_list() -> None:
    """The listing's SELECT is built from the record's fields, so each field is a column."""
    from booking.store import appointments

    names = [f.name for f in dataclasses.fields(AppointmentRecord)]
    assert appointments.select_appointments().selected_columns.keys() == names


def _with_agents_window(**window: Any) -> Catalog:
    base = catalog()
    service = dataclasses.replace(base.services[SERVICE_ID], agents_window=BookingWindow(**window))
    return dataclasses.replace(base, services={SERVICE_ID: service})


@pytest.mark.parametrize(
    ("start", "refused"),
    [(530, "short_notice"), (540, None), (420, "start_time_passed")],  # now: 07:00 London
)
def test_a_booking_needs_the_agents_minimum_notice(start: int, refused: str | None) -> None:
    today = command(on_date=TODAY, start_minute=start)
    notice = _with_agents_window(minimum_notice_minutes=120)
    if refused is None:
        assert rules.check_booking(notice, today, NOW).starts_at.hour == 9
    else:
        with pytest.raises(RuleViolation) as refusal:
            rules.check_booking(notice, today, NOW)
        assert (refusal.value.code, refusal.value.field) == (refused, "startTime")


def test_inactive_agents_booking_refuses_every_booking() -> None:
    with pytest.raises(RuleViolation) as refusal:
        rules.check_booking(_with_agents_window(active=False), command(), NOW)
    assert refusal.value.code == "agents_booking_inactive"


@pytest.mark.parametrize(
    ("on_date", "days_ahead", "notice", "inside"),
    [
        (TODAY, None, 0, True),
        (TODAY - timedelta(days=1), None, 0, False),
        (TODAY, None, 17 * 60 - 1, True),  # 23:59 is still today in London
        (TODAY, None, 17 * 60, False),  # the notice reaches tomorrow
        (TOMORROW, None, 17 * 60, True),
        (TODAY + timedelta(days=7), 7, 0, True),
        (TODAY + timedelta(days=8), 7, 0, False),
    ],
)
def test_a_date_is_in_a_window_from_where_the_notice_reaches_to_its_last_day(
    on_date: date, days_ahead: int | None, notice: int, inside: bool
) -> None:
    window = BookingWindow(days_ahead=days_ahead, minimum_notice_minutes=notice)
    assert rules.in_window(window, on_date, NOW, LONDON) is inside
