"""The migrations build the schema the models describe, and can be undone and redone."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from booking.store.models import Base
from tests.conftest import run_alembic


async def _diff_and_tables(url: str) -> tuple[list[Any], set[str]]:
    from sqlalchemy.ext.asyncio import create_async_engine

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
