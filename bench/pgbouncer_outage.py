"""How long a database outage lasts for the API, directly and behind PgBouncer (packaged
defaults, then the settings of docs/scaling.md): how long a request waits for its 503 (the
slowest are those in flight when the server went away), and the time from PostgreSQL
accepting again to every client being served again.

A private embedded PostgreSQL under /tmp, Debian's pgbouncer (transaction mode) on a free
loopback port, and the server's own `Database` (its pool, gate, timeouts and error mapping,
default settings; no HTTP). CLIENTS tasks run one short transaction after another; after a
warm-up PostgreSQL is stopped (fast shutdown) for --down-s seconds, then started. Bounded: at
most --limit-s seconds per configuration after the restart. Loopback only.

    .venv/bin/python bench/pgbouncer_outage.py [--down-s 5] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from booking.settings import DatabasePooler, Settings  # noqa: E402
from booking.store.db import Database, DatabaseUnavailable  # noqa: E402
from booking.store.embedded import EmbeddedPostgres  # noqa: E402
from tests.pgbouncer import SHORT_OUTAGE, PgBouncer, run_pgbouncer  # noqa: E402

# The pgbouncer settings compared: the package's defaults (server_login_retry 15 s,
# query_wait_timeout 120 s), then the short-outage ones.
CONFIGURATIONS: dict[str, dict[str, str] | None] = {
    "direct (no pooler)": None,
    "pgbouncer, packaged defaults": {},
    "pgbouncer, server_login_retry=1 query_wait_timeout=2": SHORT_OUTAGE,
}


@dataclass
class Attempt:
    client: int
    started: float
    ended: float
    ok: bool


@dataclass
class Outcome:
    attempts: list[Attempt] = field(default_factory=list)
    down_at: float = 0.0
    up_at: float = 0.0


async def drive(
    db: Database, clients: int, down_s: float, limit_s: float, pg: EmbeddedPostgres
) -> Outcome:
    outcome = Outcome()
    stop, all_served = asyncio.Event(), asyncio.Event()

    async def client(n: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with db.transaction() as conn:
                    await conn.fetchval("SELECT 1")
                ok = True
            except DatabaseUnavailable:
                ok = False
            outcome.attempts.append(Attempt(n, started, time.monotonic(), ok))
            if outcome.up_at and len(served_again(outcome)) == clients:
                all_served.set()
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await asyncio.sleep(2)  # warm: every client has a pooled connection
    outcome.down_at = time.monotonic()
    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(pg.start)
    outcome.up_at = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_served.wait(), limit_s)
    stop.set()
    await asyncio.gather(*tasks)
    return outcome


def served_again(outcome: Outcome) -> dict[int, float]:
    """Per client, when its first transaction begun after the restart succeeded."""
    first: dict[int, float] = {}
    for a in outcome.attempts:
        if a.ok and a.started >= outcome.up_at and a.client not in first:
            first[a.client] = a.ended
    return first


def report(name: str, outcome: Outcome, clients: int) -> str:
    failed = [a.ended - a.started for a in outcome.attempts if not a.ok]
    again = served_again(outcome)
    first = min(again.values(), default=float("nan")) - outcome.up_at
    every = max(again.values()) - outcome.up_at if len(again) == clients else float("nan")
    slowest = f"{max(failed):5.2f}" if failed else "    -"
    median = f"{statistics.median(failed):5.2f}" if failed else "    -"
    return f"| {name} | {slowest} | {median} | {len(failed)} | {first:5.2f} | {every:5.2f} |"


async def measure(down_s: float, clients: int, limit_s: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pgo", dir="/tmp"))
    pg = EmbeddedPostgres(folder)
    pg.start()
    try:
        pg.ensure_database("outage")
        print(
            f"{clients} clients, PostgreSQL down {down_s:g} s (fast shutdown), times in s\n\n"
            "| route | slowest 503 | median 503 | 503s "
            "| first served after restart | every client served |\n"
            "| --- | --- | --- | --- | --- | --- |"
        )
        for name, bouncer_settings in CONFIGURATIONS.items():
            bouncer: AbstractContextManager[PgBouncer | None] = (
                nullcontext()
                if bouncer_settings is None
                else run_pgbouncer(pg.socket_dir, **bouncer_settings)
            )
            with bouncer as running:
                pooler = DatabasePooler.NONE if running is None else DatabasePooler.TRANSACTION
                url = pg.url("outage") if running is None else running.url("outage")
                db = await Database.open(Settings(database_pooler=pooler), url)
                try:
                    outcome = await drive(db, clients, down_s, limit_s, pg)
                finally:
                    await db.close()
            print(report(name, outcome, clients), flush=True)
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down-s", type=float, default=5, help="seconds PostgreSQL is down (5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--limit-s", type=float, default=40, help="longest wait for recovery (40)")
    args = parser.parse_args()
    asyncio.run(measure(args.down_s, args.clients, args.limit_s))


if __name__ == "__main__":
    main()
