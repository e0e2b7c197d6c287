"""The booking rules, without HTTP or a database: a command and a configuration in, the rule it
breaks (its code and field) or the checked booking out; likewise for holds and check-in."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from booking.domain import AppointmentStatus, CalendarDay, Channel, CheckInMode, FieldKind
from booking.service import rules
from booking.service.availability import Interval
from booking.service.catalog import (
    ApplicationConfig,
    BookingWindow,
    CalendarUnitConfig,
    Catalog,
    CustomersTable,
    FieldTypeConfig,
    ServiceConfig,
    ServiceTypeConfig,
)
from booking.service.commands import BookAppointment, HoldSlot
from booking.service.errors import Conflict, DomainError, NotFound, RuleViolation
from booking.store.appointments import INSERTED_COLUMNS, AppointmentRecord
from booking.store.holds import HoldRecord

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
    initial_case_status: AppointmentStatus = AppointmentStatus.WAITING,
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
        initial_case_status=initial_case_status,
        check_in_minutes_before=60,
        check_in_minutes_after=15,
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
    assert checked.slot.starts_at == datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


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
    rules.check_vacant(checked.slot, [Interval(600, 630)], NOW)  # no overlap: vacant
    with pytest.raises(Conflict) as taken:
        rules.check_vacant(checked.slot, [Interval(570, 600)], NOW)
    assert taken.value.code == "slot_not_vacant"
    assert taken.value.extra == {"nearestVacancies": [540, 600, 530]}


def test_the_new_row_gives_every_inserted_column() -> None:
    checked = rules.check_booking(catalog(), command(), NOW)
    row = rules.new_appointment(checked, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), NOW)
    assert set(row) == set(INSERTED_COLUMNS)
    assert row["status"] is AppointmentStatus.PLANNED


def record(
    status: AppointmentStatus, starts_at: datetime, prevent_self_check_in: bool = False
) -> AppointmentRecord:
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
        prevent_self_check_in=prevent_self_check_in,
        bypassed_timeslot_check=False,
        fields={},
        tag_ids=[],
        reservation_token=None,
        reservation_expires_at=None,
        rescheduled_from_date=None,
        rescheduled_from_cu_index=None,
        rescheduled_from_start=None,
    )


LATER = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "starts_at", "outcome"),
    [
        (AppointmentStatus.PLANNED, LATER, True),
        (AppointmentStatus.CANCELLED, LATER, False),
        (AppointmentStatus.WAITING, LATER, "appointment_checked_in"),
        (AppointmentStatus.PENDING, LATER, "appointment_checked_in"),
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
        assert rules.check_booking(notice, today, NOW).slot.starts_at.hour == 9
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


# --- holds, check-in, reschedule ----------------------------------------------------------------

APPLICATION = ApplicationConfig(
    id=uuid.uuid4(),
    organization_id=uuid.uuid4(),
    client_id="partner",
    name="Partner",
    enabled=True,
    roles=frozenset(),
    hold_default_seconds=300,
    hold_max_seconds=900,
)


def held(**changes: Any) -> HoldRecord:
    values: dict[str, Any] = {
        "token": "t",
        "application_id": APPLICATION.id,
        "service_id": SERVICE_ID,
        "cu_index": 0,
        "on_date": TOMORROW,
        "start_minute": 570,
        "duration_minutes": 30,
        "service_type_id": TYPE_ID,
        "channel": Channel.FACE_TO_FACE,
        "created_at": NOW,
        "expires_at": NOW + timedelta(seconds=300),
        "extended": False,
        "released_at": None,
        "consumed_by": None,
    }
    return HoldRecord(**(values | changes))


@pytest.mark.parametrize(
    ("requested", "seconds"), [(None, 300), (1, 1), (900, 900), (901, "hold_too_long")]
)
def test_a_hold_lasts_the_default_or_the_request_up_to_the_maximum(
    requested: int | None, seconds: int | str
) -> None:
    broken: list[DomainError] = []
    length = rules.hold_length(APPLICATION, requested, broken)
    if isinstance(seconds, str):
        assert [(e.code, e.field) for e in broken] == [(seconds, "holdSeconds")]
    else:
        assert (broken, length) == ([], timedelta(seconds=seconds))


def test_a_hold_is_live_until_its_expiry_and_while_neither_released_nor_consumed() -> None:
    expiry = NOW + timedelta(seconds=300)
    assert held().is_live(expiry - timedelta(microseconds=1))
    assert not held().is_live(expiry)
    assert not held(released_at=NOW).is_live(NOW)
    assert not held(consumed_by=uuid.uuid4()).is_live(NOW)


@pytest.mark.parametrize(
    ("hold", "requested", "outcome"),
    [
        (held(), None, NOW + timedelta(seconds=900)),
        (held(), 60, NOW + timedelta(seconds=300)),  # never shortened
        (held(), 600, NOW + timedelta(seconds=600)),
        (held(), 901, "hold_too_long"),
        (held(extended=True), None, "reservation_already_extended"),
        (held(released_at=NOW), None, "reservation_expired"),
        (held(expires_at=NOW), None, "reservation_expired"),
    ],
)
def test_a_hold_is_extended_once_within_the_maximum(
    hold: HoldRecord, requested: int | None, outcome: datetime | str
) -> None:
    if isinstance(outcome, str):
        with pytest.raises(DomainError) as refused:
            rules.extended_expiry(hold, APPLICATION, requested, NOW)
        assert refused.value.code == outcome
    else:
        assert rules.extended_expiry(hold, APPLICATION, requested, NOW) == outcome


STARTS_AT = NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("status", "mode", "prevent", "now", "outcome"),
    [
        ("Planned", "Agent", False, STARTS_AT - timedelta(minutes=60), "Waiting"),
        ("Planned", "Kiosk", False, STARTS_AT + timedelta(minutes=15), "Waiting"),
        ("Planned", "Agent", True, STARTS_AT, "Waiting"),
        ("Planned", "Kiosk", True, STARTS_AT, "self_check_in_not_allowed"),
        ("Waiting", "Kiosk", True, STARTS_AT, "self_check_in_not_allowed"),
        ("Waiting", "Agent", False, STARTS_AT + timedelta(days=1), None),  # a repeat
        ("Pending", "Kiosk", False, STARTS_AT, None),
        ("Planned", "Agent", False, STARTS_AT - timedelta(minutes=61), "outside_check_in_window"),
        ("Planned", "Agent", False, STARTS_AT + timedelta(minutes=16), "outside_check_in_window"),
        ("Cancelled", "Agent", False, STARTS_AT, "appointment_cancelled"),
        ("NoShow", "Agent", False, STARTS_AT, "appointment_closed"),
    ],
)
def test_check_in_gives_the_initial_case_status_inside_its_window(
    status: str, mode: str, prevent: bool, now: datetime, outcome: str | None
) -> None:
    appointment = record(AppointmentStatus(status), STARTS_AT, prevent_self_check_in=prevent)
    service = catalog().services[SERVICE_ID]
    if outcome is None or outcome in ("Waiting", "Pending"):
        expected = None if outcome is None else AppointmentStatus(outcome)
        assert rules.check_in_status(appointment, service, CheckInMode(mode), now) is expected
    else:
        with pytest.raises(DomainError) as refused:
            rules.check_in_status(appointment, service, CheckInMode(mode), now)
        assert refused.value.code == outcome


def test_a_service_configured_pending_checks_in_to_pending() -> None:
    service = catalog(initial_case_status=AppointmentStatus.PENDING).services[SERVICE_ID]
    appointment = record(AppointmentStatus.PLANNED, STARTS_AT)
    status = rules.check_in_status(appointment, service, CheckInMode.AGENT, STARTS_AT)
    assert status is AppointmentStatus.PENDING


def test_a_booking_must_name_the_place_its_hold_keeps() -> None:
    slot = rules.check_booking(catalog(), command(), NOW).slot
    rules.check_hold_matches(held(), slot)
    for changes in ({"start_minute": 580}, {"service_type_id": uuid.uuid4()}, {"cu_index": 1}):
        with pytest.raises(Conflict) as refused:
            rules.check_hold_matches(held(**changes), slot)
        assert refused.value.code == "reservation_mismatch"


def hold_command(**changes: Any) -> HoldSlot:
    values: dict[str, Any] = {
        "day": CalendarDay(SERVICE_ID, 0, TOMORROW),
        "service_type_id": TYPE_ID,
        "start_minute": 570,
        "channel": Channel.FACE_TO_FACE,
    }
    return HoldSlot(**(values | changes))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"start_minute": 575}, [("start_not_on_grid", "startTime")]),
        (
            {"channel": Channel.VIDEO, "start_minute": 575, "hold_seconds": 901},
            [
                ("channel_not_supported", "channel"),
                ("start_not_on_grid", "startTime"),
                ("hold_too_long", "holdSeconds"),
            ],
        ),
        (
            {
                "day": CalendarDay(SERVICE_ID, 0, TODAY - timedelta(days=1)),
                "channel": Channel.VIDEO,
            },
            [("channel_not_supported", "channel"), ("date_in_past", "date")],
        ),
    ],
)
def test_a_hold_names_every_broken_booking_rule_that_needs_no_customer_data(
    changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    command = hold_command(**changes)
    if not expected:
        slot, length = rules.check_hold(catalog(), APPLICATION, command, NOW)
        assert (slot.starts_at, length) == (
            datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
            timedelta(minutes=5),
        )
        return
    with pytest.raises(DomainError) as refused:
        rules.check_hold(catalog(), APPLICATION, command, NOW)
    error = refused.value
    assert (error.code, error.field) == expected[0]
    assert [(e.code, e.field) for e in error.errors] == (expected if len(expected) > 1 else [])


def test_a_hold_needs_the_agents_booking_active_and_their_minimum_notice() -> None:
    with pytest.raises(RuleViolation) as inactive:
        rules.check_hold(_with_agents_window(active=False), APPLICATION, hold_command(), NOW)
    assert inactive.value.code == "agents_booking_inactive"
    today = hold_command(day=CalendarDay(SERVICE_ID, 0, TODAY), start_minute=530)
    notice = _with_agents_window(minimum_notice_minutes=120)
    with pytest.raises(RuleViolation) as short:
        rules.check_hold(notice, APPLICATION, today, NOW)
    assert (short.value.code, short.value.field) == ("short_notice", "startTime")
