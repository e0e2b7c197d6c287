"""Configuration as code: examples/demo.yaml and files like it, parsed, validated and upserted."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.settings import Settings
from booking.store.loader import (
    ConfigFileError,
    LoadSummary,
    apply_config,
    load_file,
    parse_config,
)
from booking.store.models import (
    CalendarException,
    CalendarUnit,
    CustomerRecord,
    ExceptionHours,
    FieldType,
    Organization,
    RegisteredApplication,
    Service,
    ServiceCategory,
    ServiceType,
    Tag,
    WorkingHours,
)

from . import builders
from .conftest import ROOT, bearer

DEMO = ROOT / "examples" / "demo.yaml"
DEMO_ORG = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000001")
PARTNER = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000101")
READONLY = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000102")
PASSPORT = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000201")
PERMIT = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000202")
STANDARD_RENEWAL = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000301")
CONFIG_MODELS = (
    Organization,
    RegisteredApplication,
    ServiceCategory,
    Service,
    ServiceType,
    CalendarUnit,
    WorkingHours,
    CalendarException,
    ExceptionHours,
    CustomerRecord,
    FieldType,
    Tag,
)
ORG_B = "00000000-0000-4000-8000-00000000b001"


def org(**overrides: Any) -> dict[str, Any]:
    """A small valid organization as plain data: one service, one type, one unit."""
    base: dict[str, Any] = {
        "id": ORG_B,
        "name": "Second org",
        "timeZone": "America/New_York",
        "supportedLanguages": ["en"],
        "defaultLanguage": "en",
        "defaultPhoneRegion": "US",
        "applications": [
            {"id": "00000000-0000-4000-8000-00000000b101", "clientId": "b-client", "name": "B"}
        ],
        "services": [
            {
                "id": "00000000-0000-4000-8000-00000000b201",
                "name": "Licences",
                "ticketPrefix": "L",
                "serviceTypes": [
                    {
                        "id": "00000000-0000-4000-8000-00000000b301",
                        "name": "Licence",
                        "durationMinutes": 30,
                        "channels": ["FaceToFace"],
                    }
                ],
                "calendarUnits": [
                    {
                        "cuIndex": 0,
                        "slotMinutes": 15,
                        "workingHours": {"mon": [[540, 720]], "tue": [[540, 720]]},
                        "exceptions": [{"date": "2026-12-25", "closed": True}],
                    }
                ],
            }
        ],
        "tags": [{"id": "00000000-0000-4000-8000-00000000b701", "name": "Priority"}],
    }
    base.update(overrides)
    return base


def dump(*organizations: dict[str, Any]) -> str:
    return yaml.safe_dump({"organizations": list(organizations)}, sort_keys=False)


def write(tmp_path: Path, content: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return data


async def count_rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            model.__tablename__: (await conn.scalar(select(func.count()).select_from(model))) or 0
            for model in CONFIG_MODELS
        }


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every configuration row, without the serial ids that a replace renumbers."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for model in CONFIG_MODELS:
            columns = [c for c in model.__table__.c if c.name != "id"]
            if model not in (WorkingHours, CalendarException):
                columns = list(model.__table__.c)
            if model is ExceptionHours:
                query = select(
                    CalendarException.service_id,
                    CalendarException.cu_index,
                    CalendarException.on_date,
                    ExceptionHours.start_minute,
                    ExceptionHours.end_minute,
                ).join(CalendarException)
            else:
                query = select(*columns)
            rows = (await conn.execute(query)).all()
            tables[model.__tablename__] = sorted(tuple(map(repr, row)) for row in rows)
    return tables


async def test_demo_file_loads_every_entity(engine: AsyncEngine) -> None:
    summary = await load_file(engine, DEMO)

    assert summary.counts() == {
        "organizations": 1,
        "applications": 2,
        "serviceCategories": 1,
        "services": 2,
        "serviceTypes": 3,
        "calendarUnits": 3,
        "customerRecords": 2,
        "customerFieldTypes": 5,
        "fieldTypes": 5,
        "tags": 2,
    }
    assert summary.applications == [
        (
            PARTNER,
            "demo-partner",
            "Demo partner",
            ("Appointments Manager", "Customers Manager", "Webhooks Operator"),
        ),
        (READONLY, "demo-readonly", "Demo read-only partner", ()),
    ]
    assert summary.services == [(PASSPORT, "Passport renewal"), (PERMIT, "Residence permit")]
    assert await count_rows(engine) == {
        "organization": 1,
        "registered_application": 2,
        "service_category": 1,
        "service": 2,
        "service_type": 3,
        "calendar_unit": 3,
        # unit 0: 5 weekdays x 2 + Saturday; unit 1 and the permit unit: 5 x 2 each
        "working_hours": 31,
        "calendar_exception": 9,  # 3 dates on each of 3 units
        "exception_hours": 3,  # Christmas Eve's morning on each unit
        "customer_record": 2,
        "field_type": 5,
        "tag": 2,
    }
    async with engine.connect() as conn:
        organization = (await conn.execute(select(Organization))).one()
        assert organization.time_zone == "Europe/London"
        assert organization.supported_languages == ["en", "fr", "he"]
        assert (organization.default_language, organization.default_phone_region) == ("en", "GB")
        units = (
            await conn.execute(
                select(CalendarUnit.cu_index, CalendarUnit.capacity, CalendarUnit.time_zone)
                .where(CalendarUnit.service_id == PASSPORT)
                .order_by(CalendarUnit.cu_index)
            )
        ).all()
        assert [tuple(u) for u in units] == [(0, 1, None), (1, 2, None)]
        permit = (await conn.execute(select(Service).where(Service.id == PERMIT))).one()
        assert (permit.requires_customer, permit.requires_phone, permit.requires_email) == (
            True,
            True,
            True,
        )
        assert permit.booking_window_days is None
        kinds = set((await conn.scalars(select(FieldType.kind))).all())
        assert kinds == {"text", "number", "boolean", "date", "choice"}
        assert not any((await conn.scalars(select(FieldType.required))).all())
        durations = sorted((await conn.scalars(select(ServiceType.duration_minutes))).all())
        assert durations == [20, 30, 45]


async def test_demo_organization_is_bookable_through_the_api(
    engine: AsyncEngine, client: httpx.AsyncClient, settings: Settings
) -> None:
    await load_file(engine, DEMO)
    path = f"/{PARTNER}/calendars/{PASSPORT}/2026-12-02/0/appointments"
    body = {"serviceTypeId": str(STANDARD_RENEWAL), "startTime": 570, "channel": "FaceToFace"}
    auth = bearer(settings, "demo-partner")

    booked = await client.post(path, json=body, headers=auth)
    assert booked.status_code == 201, booked.text
    assert booked.json()["ticket"]["prefix"] == "P"

    christmas = f"/{PARTNER}/calendars/{PASSPORT}/2026-12-25/0/appointments"
    closed = await client.post(christmas, json=body, headers=auth)
    assert closed.status_code == 422, closed.text

    readonly = bearer(settings, "demo-readonly", roles=[])
    denied = await client.post(
        f"/{READONLY}/calendars/{PASSPORT}/2026-12-02/0/appointments", json=body, headers=readonly
    )
    assert denied.status_code == 403, denied.text


async def test_loading_twice_changes_nothing(engine: AsyncEngine) -> None:
    first = await load_file(engine, DEMO)
    before = await snapshot(engine)

    second = await load_file(engine, DEMO)

    assert second == first
    assert await snapshot(engine) == before


async def test_changed_file_updates_rows_and_replaces_hours(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await load_file(engine, DEMO)
    data = demo_data()
    organization = data["organizations"][0]
    organization["name"] = "Demo City Services (renamed)"
    organization["applications"][1]["roles"] = ["Appointments Manager"]
    passport = organization["services"][0]
    passport["bookingWindowDays"] = None
    passport |= {
        "initialCaseStatus": "Pending",
        "checkInMinutesBefore": 5,
        "checkInMinutesAfter": 0,
    }
    organization["applications"][0] |= {"holdDefaultSeconds": 120, "holdMaxSeconds": 600}
    passport["serviceTypes"][0]["durationMinutes"] = 25
    unit = passport["calendarUnits"][0]
    unit["capacity"] = 3
    unit["workingHours"] = {"wed": [[600, 660]]}
    unit["exceptions"] = [{"date": date(2027, 1, 1), "closed": True}]

    await load_file(engine, write(tmp_path, dump(organization)))

    async with engine.connect() as conn:
        assert await conn.scalar(select(Organization.name)) == "Demo City Services (renamed)"
        roles = await conn.scalar(
            select(RegisteredApplication.roles).where(RegisteredApplication.id == READONLY)
        )
        assert roles == ["Appointments Manager"]
        service = (await conn.execute(select(Service).where(Service.id == PASSPORT))).one()
        assert service.booking_window_days is None
        check_in = (service.initial_case_status, service.check_in_minutes_before)
        assert (*check_in, service.check_in_minutes_after) == ("Pending", 5, 0)
        holds = await conn.execute(
            select(
                RegisteredApplication.hold_default_seconds, RegisteredApplication.hold_max_seconds
            ).where(RegisteredApplication.id == PARTNER)
        )
        assert tuple(holds.one()) == (120, 600)
        duration = await conn.scalar(
            select(ServiceType.duration_minutes).where(ServiceType.id == STANDARD_RENEWAL)
        )
        assert duration == 25
        capacity = await conn.scalar(
            select(CalendarUnit.capacity).where(
                CalendarUnit.service_id == PASSPORT, CalendarUnit.cu_index == 0
            )
        )
        assert capacity == 3
        hours = (
            await conn.execute(
                select(
                    WorkingHours.weekday, WorkingHours.start_minute, WorkingHours.end_minute
                ).where(WorkingHours.service_id == PASSPORT, WorkingHours.cu_index == 0)
            )
        ).all()
        assert [tuple(h) for h in hours] == [(3, 600, 660)]
        exceptions = (
            await conn.execute(
                select(CalendarException.on_date, CalendarException.closed).where(
                    CalendarException.service_id == PASSPORT, CalendarException.cu_index == 0
                )
            )
        ).all()
        assert [tuple(e) for e in exceptions] == [(date(2027, 1, 1), True)]
        # The other units kept theirs, and nothing was duplicated.
        other_hours = await conn.scalar(
            select(func.count())
            .select_from(WorkingHours)
            .where(~((WorkingHours.service_id == PASSPORT) & (WorkingHours.cu_index == 0)))
        )
        assert other_hours == 20
    counts = await count_rows(engine)
    assert counts["exception_hours"] == 2  # Christmas Eve on the two untouched units
    assert counts["service_type"] == 3


async def test_entities_not_in_the_file_are_left_alone(engine: AsyncEngine, tmp_path: Path) -> None:
    async with engine.begin() as conn:
        world = await builders.world(conn)
    await load_file(engine, DEMO)
    data = demo_data()
    organization = data["organizations"][0]
    del organization["tags"][1]
    del organization["services"][1]
    del organization["services"][0]["calendarUnits"][1]

    await load_file(engine, write(tmp_path, dump(organization)))

    counts = await count_rows(engine)
    assert counts["tag"] == 2
    assert counts["service"] == 3  # the demo's two and the builders' one
    assert counts["calendar_unit"] == 4
    async with engine.connect() as conn:
        name = await conn.scalar(select(Service.name).where(Service.id == world.service_id))
        assert name == "Passport renewal"


async def test_bad_file_changes_nothing_and_names_the_key(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    good = demo_data()["organizations"][0]
    bad = org()
    bad["services"][0]["serviceTypes"][0]["durationMinutes"] = 0
    path = write(tmp_path, dump(good, bad))

    with pytest.raises(ConfigFileError) as raised:
        await load_file(engine, path)

    message = str(raised.value)
    assert "organizations[1].services[0].serviceTypes[0].durationMinutes" in message
    assert "greater than or equal to 1" in message
    assert "got 0" in message
    assert set((await count_rows(engine)).values()) == {0}


async def test_database_refusal_rolls_back_the_whole_file(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with engine.begin() as conn:
        org_id = await builders.organization(conn)
        await builders.application(conn, org_id, client_id="b-client")
    before = await snapshot(engine)
    path = write(tmp_path, dump(demo_data()["organizations"][0], org()))

    with pytest.raises(ConfigFileError) as raised:
        await load_file(engine, path)

    message = str(raised.value)
    assert message.startswith("organizations[1].applications[0].clientId: 'b-client'")
    assert "already the client id of application" in message
    assert await snapshot(engine) == before  # the demo organization, loaded first, is gone too


async def test_id_owned_by_another_organization_is_rejected_cleanly(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await load_file(engine, DEMO)
    before = await snapshot(engine)
    thief = org()
    thief["services"][0]["id"] = str(PASSPORT)

    with pytest.raises(ConfigFileError) as raised:
        await load_file(engine, write(tmp_path, dump(thief)))

    assert str(raised.value) == (
        f"organizations[0].services[0].id: {PASSPORT} already belongs to another organization "
        f"({DEMO_ORG}); ids are global, so give this one a new id"
    )
    assert await snapshot(engine) == before


async def test_service_type_of_another_service_is_rejected(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await load_file(engine, DEMO)
    data = demo_data()
    organization = data["organizations"][0]
    moved = organization["services"][0]["serviceTypes"].pop(0)
    organization["services"][1]["serviceTypes"].append(moved)

    with pytest.raises(ConfigFileError, match="already belongs to another service"):
        await load_file(engine, write(tmp_path, dump(organization)))

    async with engine.connect() as conn:
        owner = await conn.scalar(
            select(ServiceType.service_id).where(ServiceType.id == STANDARD_RENEWAL)
        )
    assert owner == PASSPORT


async def test_apply_config_runs_in_the_callers_transaction_and_never_commits(
    engine: AsyncEngine,
) -> None:
    document = parse_config(DEMO.read_text(encoding="utf-8"))
    async with engine.connect() as conn:
        transaction = await conn.begin()
        summary = await apply_config(conn, document)
        assert isinstance(summary, LoadSummary)
        assert await conn.scalar(select(func.count()).select_from(Service)) == 2
        await transaction.rollback()
    assert set((await count_rows(engine)).values()) == {0}


async def test_failed_apply_leaves_the_callers_earlier_work_usable(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await builders.organization(conn, name="Earlier work")
        await load_file_in(conn, dump(org()))
    clash = org(id=str(uuid.uuid4()), applications=[], services=[])
    clash["tags"][0]["name"] = "changed"
    async with engine.begin() as conn:
        await builders.organization(conn, name="Same transaction")
        with pytest.raises(ConfigFileError, match=r"tags\[0\]\.id: .* another organization"):
            await load_file_in(conn, dump(clash))
        assert await conn.scalar(text("SELECT count(*) FROM organization")) == 3
    async with engine.connect() as conn:
        assert await conn.scalar(select(Tag.name)) == "Priority"
        assert await conn.scalar(select(func.count()).select_from(Organization)) == 3


async def load_file_in(conn: AsyncConnection, content: str) -> LoadSummary:
    return await apply_config(conn, parse_config(content))


async def test_yaml_syntax_error_names_the_line(engine: AsyncEngine, tmp_path: Path) -> None:
    content = "organizations:\n  - id: 1\n    name: [unclosed\n    timeZone: UTC\n"

    with pytest.raises(ConfigFileError, match=r"^line \d+, column \d+: invalid YAML") as raised:
        await load_file(engine, write(tmp_path, content))

    assert str(raised.value).startswith("line 4,")


def test_duplicate_yaml_key_names_both_lines() -> None:
    content = "organizations:\n  - id: 1\n    name: A\n    name: B\n"

    with pytest.raises(ConfigFileError) as raised:
        parse_config(content)

    assert str(raised.value) == (
        "line 4, column 5: invalid YAML: found key 'name' twice (first on line 3) "
        "(while reading a mapping)"
    )


def test_unknown_key_is_rejected_by_name() -> None:
    data = org()
    data["services"][0]["colour"] = "blue"
    data["services"][0]["calendarUnits"][0]["workingHours"]["monday"] = [[480, 720]]
    data["time_zone"] = "UTC"

    with pytest.raises(ConfigFileError) as raised:
        parse_config(dump(data))

    assert set(raised.value.problems) == {
        "organizations[0].services[0].colour: unknown key (keys are camelCase)",
        "organizations[0].services[0].calendarUnits[0].workingHours.monday: "
        "unknown key (keys are camelCase)",
        "organizations[0].time_zone: unknown key (keys are camelCase); did you mean 'timeZone'?",
    }


def test_default_language_must_be_supported() -> None:
    with pytest.raises(ConfigFileError) as raised:
        parse_config(dump(org(defaultLanguage="fr", supportedLanguages=["en", "he"])))

    assert str(raised.value) == (
        "organizations[0].defaultLanguage: 'fr' is not one of supportedLanguages ['en', 'he']"
    )


def test_yaml_boolean_lookalikes_stay_strings() -> None:
    """YAML 1.1 reads NO, no, on, yes as booleans: Norway and Norwegian must survive."""
    content = f"""
organizations:
  - id: {ORG_B}
    name: Oslo
    timeZone: Europe/Oslo
    supportedLanguages: [no, en]
    defaultLanguage: no
    defaultPhoneRegion: NO
    applications: [{{id: {uuid.uuid4()}, clientId: on, name: yes}}]
"""

    organization = parse_config(content).organizations[0]

    assert organization.default_phone_region == "NO"
    assert organization.supported_languages == ["no", "en"]
    assert organization.default_language == "no"
    assert (organization.applications[0].client_id, organization.applications[0].name) == (
        "on",
        "yes",
    )


def unit_path(rest: str = "") -> str:
    return "organizations[0].services[0].calendarUnits[0]" + rest


def with_unit(**changes: Any) -> dict[str, Any]:
    data = org()
    data["services"][0]["calendarUnits"][0].update(changes)
    return data


def with_service(**changes: Any) -> dict[str, Any]:
    data = org()
    data["services"][0].update(changes)
    return data


def with_type(**changes: Any) -> dict[str, Any]:
    data = org()
    data["services"][0]["serviceTypes"][0].update(changes)
    return data


def with_field_type(**field_type: Any) -> dict[str, Any]:
    return org(fieldTypes=[{"id": str(uuid.uuid4()), "name": "F", **field_type}])


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            with_unit(workingHours={"mon": [[480, 720], [700, 800]]}),
            unit_path(".workingHours.mon: intervals [480, 720] and [700, 800] overlap"),
            id="overlapping-hours",
        ),
        pytest.param(
            with_unit(workingHours={"mon": [[480, 720], [780, 780]]}),
            unit_path(".workingHours.mon[1]: start 780 must be before end 780"),
            id="empty-interval",
        ),
        pytest.param(
            with_unit(workingHours={"fri": [[480, 1500]]}),
            unit_path(
                ".workingHours.fri[0][1]: Input should be less than or equal to 1440 (got 1500)"
            ),
            id="past-midnight",
        ),
        pytest.param(
            with_unit(workingHours={"tue": [[480, 720], 780]}),
            unit_path(
                ".workingHours.tue[1]: expected a [start, end] pair of minutes after midnight, "
                "e.g. [480, 720]"
            ),
            id="interval-not-a-pair",
        ),
        pytest.param(
            with_unit(workingHours={"wed": [["08:00", 720]]}),
            unit_path(".workingHours.wed[0][0]: Input should be a valid integer (got '08:00')"),
            id="time-as-text",
        ),
        pytest.param(
            with_unit(slotMinutes=0),
            unit_path(".slotMinutes: Input should be greater than or equal to 1 (got 0)"),
            id="slot-minutes",
        ),
        pytest.param(
            with_unit(capacity=0),
            unit_path(".capacity: Input should be greater than or equal to 1 (got 0)"),
            id="capacity",
        ),
        pytest.param(
            with_unit(cuIndex=-1),
            unit_path(".cuIndex: Input should be greater than or equal to 0 (got -1)"),
            id="cu-index",
        ),
        pytest.param(
            with_unit(timeZone="Europe/Atlantis"),
            unit_path(".timeZone: unknown IANA time zone 'Europe/Atlantis' (e.g. 'Europe/London')"),
            id="unit-time-zone",
        ),
        pytest.param(
            with_unit(exceptions=[{"date": "2026-12-24", "closed": True, "hours": [[480, 720]]}]),
            unit_path(".exceptions[0]: a closed date cannot also have hours"),
            id="closed-with-hours",
        ),
        pytest.param(
            with_unit(exceptions=[{"date": "2026-12-24"}]),
            unit_path(".exceptions[0]: give either 'closed: true' or the date's 'hours'"),
            id="exception-without-hours",
        ),
        pytest.param(
            with_unit(exceptions=[{"date": "2026-02-30", "closed": True}]),
            unit_path(
                ".exceptions[0].date: Input should be a valid date or datetime, "
                "day value is outside expected range (got '2026-02-30')"
            ),
            id="impossible-date",
        ),
        pytest.param(
            with_unit(
                exceptions=[
                    {"date": "2026-12-25", "closed": True},
                    {"date": "2026-12-25", "closed": True},
                ]
            ),
            unit_path(
                ".exceptions[1].date: exception date 2026-12-25 appears twice "
                f"(first at {unit_path('.exceptions[0].date')})"
            ),
            id="duplicate-exception-date",
        ),
        pytest.param(
            with_type(channels=["FaceToFace", "Fax"]),
            "organizations[0].services[0].serviceTypes[0].channels[1]: "
            "Input should be 'FaceToFace', 'Video' or 'Phone' (got 'Fax')",
            id="unknown-channel",
        ),
        pytest.param(
            with_type(channels=[]),
            "organizations[0].services[0].serviceTypes[0].channels: "
            "List should have at least 1 item after validation, not 0",
            id="no-channel",
        ),
        pytest.param(
            with_type(durationMinutes=1441),
            "organizations[0].services[0].serviceTypes[0].durationMinutes: "
            "Input should be less than or equal to 1440 (got 1441)",
            id="duration-too-long",
        ),
        pytest.param(
            with_type(durationMinutes="20"),
            "organizations[0].services[0].serviceTypes[0].durationMinutes: "
            "Input should be a valid integer (got '20')",
            id="duration-as-text",
        ),
        pytest.param(
            with_service(bookingWindowDays=-1),
            "organizations[0].services[0].bookingWindowDays: "
            "Input should be greater than or equal to 0 (got -1)",
            id="booking-window",
        ),
        pytest.param(
            with_service(initialCaseStatus="CheckedIn"),
            "organizations[0].services[0].initialCaseStatus: "
            "Input should be 'Waiting' or 'Pending' (got 'CheckedIn')",
            id="initial-case-status",
        ),
        pytest.param(
            with_service(checkInMinutesBefore=-1),
            "organizations[0].services[0].checkInMinutesBefore: "
            "Input should be greater than or equal to 0 (got -1)",
            id="check-in-window",
        ),
        pytest.param(
            org(
                applications=[
                    {
                        "id": "00000000-0000-4000-8000-00000000b101",
                        "clientId": "b-client",
                        "name": "B",
                        "holdDefaultSeconds": 600,
                        "holdMaxSeconds": 300,
                    }
                ]
            ),
            "organizations[0].applications[0]: holdDefaultSeconds 600 is more than "
            "holdMaxSeconds 300",
            id="hold-default-over-max",
        ),
        pytest.param(
            with_service(requiresPhone="sometimes"),
            "organizations[0].services[0].requiresPhone: "
            "Input should be a valid boolean (got 'sometimes')",
            id="flag-not-boolean",
        ),
        pytest.param(
            with_service(
                calendarUnits=[
                    {"cuIndex": 0, "slotMinutes": 10},
                    {"cuIndex": 0, "slotMinutes": 15},
                ]
            ),
            unit_path(".cuIndex").replace("[0].cuIndex", "[1].cuIndex")
            + f": cuIndex 0 appears twice (first at {unit_path('.cuIndex')})",
            id="duplicate-cu-index",
        ),
        pytest.param(
            with_field_type(kind="choice"),
            "organizations[0].fieldTypes[0].options: "
            "a field type of kind 'choice' needs at least one option",
            id="choice-without-options",
        ),
        pytest.param(
            with_field_type(kind="number", options=["1"]),
            "organizations[0].fieldTypes[0].options: only kind 'choice' has options, "
            "not kind 'number'",
            id="options-on-a-number",
        ),
        pytest.param(
            with_field_type(kind="colour"),
            "organizations[0].fieldTypes[0].kind: Input should be 'text', 'number', 'boolean', "
            "'date' or 'choice' (got 'colour')",
            id="unknown-kind",
        ),
        pytest.param(
            org(timeZone="London"),
            "organizations[0].timeZone: unknown IANA time zone 'London' (e.g. 'Europe/London')",
            id="org-time-zone",
        ),
        pytest.param(
            org(defaultPhoneRegion="gb"),
            "organizations[0].defaultPhoneRegion: 'gb' is not an uppercase ISO 3166 alpha-2 "
            "code such as 'GB'",
            id="phone-region-lowercase",
        ),
        pytest.param(
            org(defaultPhoneRegion="XX"),
            "organizations[0].defaultPhoneRegion: 'XX' is not a region known to the "
            "phone-number parser",
            id="phone-region-unknown",
        ),
        pytest.param(
            org(supportedLanguages=["en", "en"]),
            "organizations[0].supportedLanguages: 'en' is listed twice",
            id="duplicate-language",
        ),
        pytest.param(
            org(name="   "),
            "organizations[0].name: String should have at least 1 character (got '   ')",
            id="blank-name",
        ),
        pytest.param(
            {k: v for k, v in org().items() if k != "timeZone"},
            "organizations[0].timeZone: required key is missing",
            id="missing-key",
        ),
    ],
)
def test_invalid_document_is_rejected_with_the_key_path(
    document: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigFileError) as raised:
        parse_config(dump(document))

    assert raised.value.problems == (expected,)


def test_bad_guid_is_rejected() -> None:
    data = org()
    data["tags"][0]["id"] = "not-a-guid"

    with pytest.raises(ConfigFileError) as raised:
        parse_config(dump(data))

    (problem,) = raised.value.problems
    assert problem.startswith("organizations[0].tags[0].id: Input should be a valid UUID")
    assert problem.endswith("(got 'not-a-guid')")


def test_duplicate_ids_are_rejected_across_the_file() -> None:
    first = org()
    second = org(id=str(uuid.uuid4()))
    second["applications"][0]["id"] = str(uuid.uuid4())

    with pytest.raises(ConfigFileError) as raised:
        parse_config(dump(first, second))

    assert raised.value.problems == (
        "organizations[1].applications[0].clientId: clientId b-client appears twice "
        "(first at organizations[0].applications[0].clientId)",
        "organizations[1].services[0].id: service id 00000000-0000-4000-8000-00000000b201 "
        "appears twice (first at organizations[0].services[0].id)",
        "organizations[1].services[0].serviceTypes[0].id: service type id "
        "00000000-0000-4000-8000-00000000b301 appears twice "
        "(first at organizations[0].services[0].serviceTypes[0].id)",
        "organizations[1].tags[0].id: tag id 00000000-0000-4000-8000-00000000b701 appears "
        "twice (first at organizations[0].tags[0].id)",
    )
    assert str(raised.value).startswith("4 problems:\n  - organizations[1].applications[0]")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty: expected a mapping with an 'organizations' list"),
        ("- just a list\n", "(top level): Input should be a valid dictionary"),
        ("organizations: {}\n", "organizations: Input should be a valid list"),
    ],
)
def test_a_file_that_is_not_a_document_is_rejected(content: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as raised:
        parse_config(content)

    assert str(raised.value).startswith(expected)


async def test_missing_file_is_a_config_file_error(engine: AsyncEngine, tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        await load_file(engine, tmp_path / "nope.yaml")
