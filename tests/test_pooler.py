"""Behind a transaction-mode pooler (DATABASE_POOLER=transaction), through Debian's PgBouncer
1.18: nothing the pooler refuses, nothing that outlives a transaction, and the statement
timeout still applies. (The booking guarantees through it: tests/test_concurrency.py,
tests/test_idempotency.py, tests/test_database_faults.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from booking.cli import DEMO_FILE
from booking.domain import CalendarDay
from booking.settings import DatabasePooler, Settings
from booking.store.db import Database, DatabaseUnavailable
from tests.conftest import ROOT, TEST_SECRET, TODAY, through_pgbouncer
from tests.pgbouncer import PgBouncer


@pytest.fixture
async def pooled(
    settings: Settings, database_url: str, pgbouncer: PgBouncer
) -> AsyncIterator[Database]:
    behind = settings.model_copy(
        update={
            "database_pooler": DatabasePooler.TRANSACTION,
            "database_statement_timeout_ms": 1234,
            "database_pool_size": 12,  # three times the pooler's server connections
        }
    )
    db = await Database.open(behind, through_pgbouncer(pgbouncer, database_url))
    yield db
    await db.close()


async def test_every_transaction_runs_with_the_statement_timeout(pooled: Database) -> None:
    async with pooled.transaction() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
    async with pooled.calendar_day(CalendarDay(uuid.uuid4(), 0, TODAY)) as tx:
        assert await tx.conn.fetchval("SHOW statement_timeout") == "1234ms"


async def test_statements_with_parameters_from_many_connections_share_few_server_connections(
    pooled: Database,
) -> None:
    """Twelve client connections over four server connections, each running the same and
    different statements with parameters, in transactions and in autocommit: a named prepared
    statement would be missing on (or already exist on) the server connection a transaction
    lands on."""

    async def work(n: int) -> int:
        total = 0
        for i in range(20):
            async with pooled.read() as conn:
                total += await conn.fetchval("SELECT $1::int + $2::int", n, i)
            async with pooled.transaction() as conn:
                total += await conn.fetchval("SELECT $1::int * 2", i)
        return total

    totals = await asyncio.gather(*(work(n) for n in range(24)))
    assert totals == [20 * n + 3 * sum(range(20)) for n in range(24)]


async def test_pgbouncer_refuses_the_startup_parameters_of_a_direct_connection(
    settings: Settings, database_url: str, pgbouncer: PgBouncer
) -> None:
    """Why the setting exists: connected as to PostgreSQL itself (`statement_timeout` as a
    startup parameter), every statement through PgBouncer fails."""
    db = await Database.open(settings, through_pgbouncer(pgbouncer, database_url))
    try:
        with pytest.raises(DatabaseUnavailable):
            await db.ping()
    finally:
        await db.close()


def test_migrations_and_loads_through_pgbouncer_can_be_run_again_and_again(
    make_database: object, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    """`booking-api migrate` and `load` use SQLAlchemy's engine: its statements are unnamed
    too, or the names one process leaves on PgBouncer's server connections collide with the
    next process's ("prepared statement already exists")."""
    url = through_pgbouncer(pgbouncer, make_database("pooled_runs"))  # type: ignore[operator]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_POOLER": "transaction",
        "DATA_DIR": str(tmp_path),
        "JWT_DEV_SECRET": TEST_SECRET,
    }
    for _ in range(2):
        for command in (["migrate"], ["load", str(DEMO_FILE)]):
            run = subprocess.run(
                [sys.executable, "-m", "booking.cli", *command],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stderr[-2000:]
