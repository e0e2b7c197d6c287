"""The migrations build the schema the models describe, and can be undone and redone."""

from __future__ import annotations

import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from booking.store.models import Base
from tests.conftest import run_alembic


async def _diff_and_tables(url: str) -> tuple[list[Any], set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def inspect_schema(sync_conn: Any) -> tuple[list[Any], set[str]]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                diff = compare_metadata(context, Base.metadata)
                return diff, set(inspect(sync_conn).get_table_names())

            return await conn.run_sync(inspect_schema)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_and_models_match_migrations(make_database: Any) -> None:
    url = make_database("booking_migrations_test")

    run_alembic(url, ("upgrade", "head"))
    diff, tables = await _diff_and_tables(url)
    assert diff == [], f"models and migrations disagree: {diff}"
    assert {t.name for t in Base.metadata.sorted_tables} <= tables

    run_alembic(url, ("downgrade", "base"))
    _, tables = await _diff_and_tables(url)
    assert tables == {"alembic_version"}

    run_alembic(url, ("upgrade", "head"))
    diff, _ = await _diff_and_tables(url)
    assert diff == []


# The rows a CheckedIn appointment needs, in the schema of revision 0001.
_BEFORE_HOLDS = """
INSERT INTO organization VALUES ('{org}', 'Org', 'Europe/London', 'en', '{{en}}', 'GB');
INSERT INTO registered_application (id, organization_id, client_id, name)
    VALUES ('{app}', '{org}', 'client', 'Partner');
INSERT INTO service (id, organization_id, name) VALUES ('{service}', '{org}', 'Passports');
INSERT INTO service_type VALUES ('{type}', '{service}', 'Visit', 30, '{{FaceToFace}}');
INSERT INTO calendar_unit (service_id, cu_index, slot_minutes) VALUES ('{service}', 0, 10);
INSERT INTO appointment (id, organization_id, service_id, cu_index, on_date, start_minute,
    duration_minutes, starts_at, time_zone, service_type_id, status, status_date, ticket_prefix,
    ticket_number, channel, language, prevent_self_check_in, bypassed_timeslot_check,
    created_by_application_id, created_at)
    VALUES ('{case}', '{org}', '{service}', 0, '2026-12-01', 540, 30, '2026-12-01T09:00Z',
    'Europe/London', '{type}', 'CheckedIn', now(), 'A', 1, 'FaceToFace', 'en', false, false,
    '{app}', now());
"""


async def _status(url: str, case_id: uuid.UUID) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT status FROM appointment WHERE id = :id")
            return str((await conn.execute(query, {"id": case_id})).scalar_one())
    finally:
        await engine.dispose()


async def test_checked_in_appointments_become_waiting_and_back(make_database: Any) -> None:
    url = make_database("booking_status_migration_test")
    run_alembic(url, ("upgrade", "0001"))
    ids = {name: uuid.uuid4() for name in ("org", "app", "service", "type", "case")}
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in _BEFORE_HOLDS.format(**ids).split(";\n"):
                if statement.strip():
                    await conn.execute(text(statement))
    finally:
        await engine.dispose()

    run_alembic(url, ("upgrade", "head"))
    assert await _status(url, ids["case"]) == "Waiting"
    run_alembic(url, ("downgrade", "0001"))
    assert await _status(url, ids["case"]) == "CheckedIn"
