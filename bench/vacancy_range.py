"""The range vacancies (GET /calendars/{serviceId}/vacancies) of 31 days x 10 calendar units with
500 appointments per day: the server's own time (Server-Timing) per request, its CPU against the
equivalent single-day calls (31 x 10 GET .../{date}/{cuIndex}/vacancies), and the same on a
copy of the database with --growth-rows past appointments (target: flat, <= 1.2x).

`range_phase` and `range_growth` are what the bench runner calls (`--skip-range` skips them);
`python bench/vacancy_range.py` runs them alone (embedded PostgreSQL or BENCH_DATABASE_URL, one
API worker, a smaller growth by default) and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from datetime import timedelta
from typing import Any

import asyncpg
import benchkit
import httpx
from benchkit import APPOINTMENT_COLUMNS, OPEN, SLOT_MINUTES, Database, Server, World

DAYS = 31
UNITS = benchkit.UNITS_PER_SERVICE  # 10
PER_DAY = 500  # 50 per unit: 4 of each unit's 54 starts stay vacant
SERVICE = 1  # bench service 1: 10 units of capacity 1, 08:00-17:00, a 10-minute type
TARGET_SERVER_MS = 20.0
TARGET_CPU_ADVANTAGE = 10.0
TARGET_GROWTH_RATIO = 1.2
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


async def insert_range_days(conn: asyncpg.Connection, world: World) -> None:
    """500 appointments on each of the DAYS dates from the first bench date on, in service
    SERVICE: appointment k of a day books unit k % 10 at its (k / 10)-th start; tickets 1..500."""
    service_id, type_id = world.services[SERVICE]
    await conn.execute(
        f"""
        INSERT INTO appointment ({APPOINTMENT_COLUMNS})
        SELECT gen_random_uuid(), $1, $2, k % {UNITS}, d, start, {benchkit.DURATION},
               (d + make_interval(mins => start)) AT TIME ZONE $3, $3, $4, 'Planned', now(),
               $5, k + 1, NULL, 'Phone', 'en', '+442079460018', 'bench@example.com', false,
               '{{}}', '{{}}', false, $6, now(), NULL, NULL
        FROM generate_series(0, {DAYS - 1}) AS n, generate_series(0, {PER_DAY - 1}) AS k,
             LATERAL (SELECT $7::date + n AS d, {OPEN} + (k / {UNITS}) * {SLOT_MINUTES} AS start)
             AS s
        """,
        world.organization_id,
        service_id,
        benchkit.ORG_TIME_ZONE,
        type_id,
        world.prefixes[SERVICE],
        world.application_id,
        world.first_date,
    )
    await conn.execute(
        "INSERT INTO ticket_counter (service_id, on_date, last_number) "
        "SELECT $1, $2::date + n, $3 FROM generate_series(0, $4 - 1) AS n",
        service_id,
        world.first_date,
        PER_DAY,
        DAYS,
    )
    await conn.execute("ANALYZE appointment")


def _server_ms(response: httpx.Response) -> float:
    response.raise_for_status()
    match = SERVER_TIMING.search(response.headers.get("server-timing", ""))
    if match is None:
        raise RuntimeError("no Server-Timing header in the vacancies answer")
    return float(match[1])


async def range_timing(
    server: Server, world: World, token: str, requests: int, sweeps: int
) -> dict[str, Any]:
    """`requests` sequential range requests, then `sweeps` times the 310 single-day requests
    that answer the same; server time and server CPU of each."""
    service_id, type_id = world.services[SERVICE]
    last = world.first_date + timedelta(days=DAYS - 1)
    range_path = (
        f"/{world.application_id}/calendars/{service_id}/vacancies?serviceTypeId={type_id}"
        f"&from={world.first_date}&to={last}"
    )
    days = [world.first_date + timedelta(days=n) for n in range(DAYS)]
    single_paths = [
        f"/{world.application_id}/calendars/{service_id}/{on_date}/{cu}/vacancies"
        f"?serviceTypeId={type_id}"
        for on_date in days
        for cu in range(UNITS)
    ]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        for _ in range(10):  # warm-up: the configuration cache, the pool, the statements
            (await client.get(range_path)).raise_for_status()
            (await client.get(single_paths[0])).raise_for_status()
        server_ms: list[float] = []
        client_ms: list[float] = []
        cpu_before = server.cpu_seconds()
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(range_path)
            client_ms.append((time.perf_counter() - started) * 1000)
            server_ms.append(_server_ms(response))
        range_cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / requests
        items = response.json()
        sweep_server_ms: list[float] = []
        cpu_before = server.cpu_seconds()
        for _ in range(sweeps):
            total = 0.0
            for path in single_paths:
                total += _server_ms(await client.get(path))
            sweep_server_ms.append(total)
        sweep_cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / sweeps if sweeps else 0.0
    return {
        "days": DAYS,
        "units": UNITS,
        "appointments_per_day": PER_DAY,
        "requests": requests,
        "items": len(items),
        "slots": sum(len(item["slots"]) for item in items),
        "server_median_ms": round(benchkit.percentile(server_ms, 50), 2),
        "server_p99_ms": round(benchkit.percentile(server_ms, 99), 2),
        "client_median_ms": round(benchkit.percentile(client_ms, 50), 2),
        "cpu_ms_per_range_request": round(range_cpu_ms, 2),
        "single_day_sweeps": sweeps,
        "single_day_requests_per_sweep": len(single_paths),
        "single_day_sweep_server_median_ms": round(statistics.median(sweep_server_ms), 1)
        if sweeps
        else None,
        "cpu_ms_per_single_day_sweep": round(sweep_cpu_ms, 1),
        "cpu_advantage": round(sweep_cpu_ms / range_cpu_ms, 1) if sweeps and range_cpu_ms else None,
    }


def _line(label: str, timing: dict[str, Any]) -> str:
    return (
        f"{'range vacancies ' + label:<28} server median {timing['server_median_ms']} ms   p99 "
        f"{timing['server_p99_ms']} ms   cpu {timing['cpu_ms_per_range_request']} ms/req vs "
        f"{timing['cpu_ms_per_single_day_sweep']} ms per 310 single-day calls "
        f"(x{timing['cpu_advantage']})"
    )


async def range_phase(
    db: Database, api: Server, world: World, token: str, requests: int, label: str
) -> dict[str, Any]:
    """The range's appointments added to `db`, then the timing (the runner's reset removes
    them with the other bench dates' rows)."""
    conn = await benchkit.connect(db)
    try:
        await insert_range_days(conn, world)
    finally:
        await conn.close()
    timing = await range_timing(api, world, token, requests, max(3, requests // 20))
    timing["ok"] = (
        timing["server_median_ms"] <= TARGET_SERVER_MS
        and (timing["cpu_advantage"] or 0) >= TARGET_CPU_ADVANTAGE
    )
    print(_line(label, timing), flush=True)
    return timing


async def range_growth(
    sides: dict[str, tuple[Database, Server]],
    world: World,
    token: str,
    requests: int,
    rounds: int,
) -> dict[str, Any]:
    """The range requests on the empty and the grown database (`sides`: "empty" and "1m"),
    alternated for `rounds` rounds; the ratio of the medians of their server medians."""
    for db, _ in sides.values():
        conn = await benchkit.connect(db)
        try:
            await insert_range_days(conn, world)
        finally:
            await conn.close()
    medians: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(1, rounds + 1):
        for side in list(sides) if round_ % 2 else list(reversed(sides)):
            _, server = sides[side]
            timing = await range_timing(server, world, token, requests, 0)
            medians[side].append(timing["server_median_ms"])
            print(
                f"  range vacancies, {side}, round {round_}: server median "
                f"{timing['server_median_ms']} ms",
                flush=True,
            )
    empty, grown = (statistics.median(medians[side]) for side in ("empty", "1m"))
    ratio = round(grown / empty, 3) if empty else None
    return {
        "rounds": rounds,
        "server_medians_ms": medians,
        "ratio": ratio,
        "target": TARGET_GROWTH_RATIO,
        "ok": ratio is not None and ratio <= TARGET_GROWTH_RATIO,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="range requests per timing")
    parser.add_argument("--growth-rows", type=int, default=100_000, help="past appointments")
    parser.add_argument("--rounds", type=int, default=3, help="alternated growth rounds")
    args = parser.parse_args()
    db = Database.start("booking_bench_range", os.environ.get("BENCH_DATABASE_URL"))
    servers: list[Server] = []
    grown_db: Database | None = None
    try:
        benchkit.migrate(db)
        conn = await benchkit.connect(db)
        try:
            await benchkit.wipe(conn)
        finally:
            await conn.close()
        world = await benchkit.seed(db)
        secret = benchkit.new_secret()
        token = benchkit.mint_token(secret, world.client_id)
        api = benchkit.start_api(db, secret, workers=1, pool_size=10)
        servers.append(api)
        result: dict[str, Any] = {
            "empty": await range_phase(db, api, world, token, args.requests, "(empty)")
        }
        api.stop()  # CREATE DATABASE ... TEMPLATE needs the source idle
        conn = await benchkit.connect(db)
        try:
            await benchkit.reset_bookings(conn, world)
        finally:
            await conn.close()
        grown_db = await benchkit.copy_database(db, db.name + "_grown")
        conn = await benchkit.connect(grown_db)
        try:
            await benchkit.insert_past_appointments(conn, world, args.growth_rows)
            await conn.execute("VACUUM (ANALYZE) appointment")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        api = benchkit.start_api(db, secret, workers=1, pool_size=10)
        grown_api = benchkit.start_api(grown_db, secret, workers=1, pool_size=10)
        servers += [api, grown_api]
        sides = {"empty": (db, api), "1m": (grown_db, grown_api)}
        result["growth"] = await range_growth(sides, world, token, args.requests, args.rounds)
        result["growth"]["rows"] = args.growth_rows
        print(json.dumps(result, indent=2))
        return 0 if result["empty"]["ok"] and result["growth"]["ok"] else 1
    finally:
        for server in reversed(servers):
            server.stop()
        if grown_db is not None:
            await benchkit.drop_database(grown_db)
        db.stop()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
