"""`make bench`: throughput and latency of the booking API, checked against a floor and a
reference, with the database's invariants verified after every booking run.

1. Starts the embedded PostgreSQL (database `booking_bench`, recreated) unless BENCH_DATABASE_URL
   is set (that database is wiped), migrates it and seeds a bench organization through the
   app's configuration loader.
2. Starts the API (uvicorn, uvloop, httptools, no access log, --workers N) and drives it with wrk:
   (a) book distinct vacant slots, (b) GET vacancies, (c) POST /bench/bare (no database),
   then (d) books through bench/reference_app.py (raw ASGI on asyncpg) with the same script.
   After every booking run the database is checked (never over capacity, tickets gapless) and
   reset (TRUNCATE appointment, ticket_counter).
3. Server time (Server-Timing) of the vacancies of a day with 500 appointments, and of the range
   vacancies of 31 days x 10 units with 500 appointments a day against the 310 single-day calls
   (vacancy_range.py).
4. Growth: (a) and (b) again with --growth-rows appointments (default 1,000,000) on past dates,
   the ratios to the empty table, and EXPLAIN (ANALYZE, BUFFERS) of the hot queries.
5. Find a customer record by key field with 1,000 and then --customer-rows records (customers.py).
6. Webhooks (webhooks.py): the CPU a booking spends writing its event (hook on against off, in
   this process, alternated rounds), and the delay from the event's commit to a real receiver at
   200 events/s, delivered by a real server process.
7. Prints everything and writes bench/results/<UTC timestamp>.json and bench/results/latest.json.

This file is the command line and the order of the phases: the phases are in phases.py, wrk and
its output in wrk.py, EXPLAIN in explain.py, the figures, targets and JSON in report.py, and
the database, the seed, the servers and the invariant checks in benchkit.py. See
bench/README.md for how to read the output and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

import benchkit
import report as reporting
from benchkit import Database, Server
from customers import customer_query_phase
from phases import Bench, booking_rounds, dense_phase, growth_phase, lock_rounds
from vacancy_range import range_phase
from webhooks import webhooks_phase
from wrk import find_wrk


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (>= 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="database connections per worker of the API (10, its default)",
    )
    parser.add_argument(
        "--reference-pool-size",
        type=int,
        default=20,
        help="connections per worker of the reference (20: it did better with 20 than with 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternated rounds of (a) and (d); a/d is the ratio of their medians (3)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before runs")
    parser.add_argument("--skip-growth", action="store_true", help="no 1M-row phase")
    parser.add_argument("--growth-rows", type=int, default=1_000_000, help="rows for growth")
    parser.add_argument(
        "--growth-rounds",
        type=int,
        default=3,
        help="alternated rounds of (a) and (b) on the empty and the grown table (3)",
    )
    parser.add_argument(
        "--timing-requests", type=int, default=200, help="sequential vacancies requests (200)"
    )
    parser.add_argument(
        "--skip-range", action="store_true", help="no range-vacancies phase (vacancy_range.py)"
    )
    parser.add_argument("--skip-customers", action="store_true", help="no customer-query phase")
    parser.add_argument(
        "--skip-webhooks",
        action="store_true",
        help="no webhooks phase (the event's CPU, commit-to-receiver delay: webhooks.py)",
    )
    parser.add_argument(
        "--customer-rows",
        type=int,
        default=1_000_000,
        help="customer records of the find-by-key-field phase (1,000,000)",
    )
    parser.add_argument(
        "--compare-locks",
        action="store_true",
        help="only the booking run, alternated between the advisory calendar-day lock and the "
        "row lock (CALENDAR_DAY_LOCK=row), --rounds rounds each",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the API workers with py-spy during booking run (a) (collapsed stacks in "
        "bench/results/)",
    )
    args = parser.parse_args()
    if args.duration < 10:
        parser.error("--duration must be at least 10 seconds")
    return args


async def run(args: argparse.Namespace, wrk: str, report: dict[str, Any]) -> int:
    external = os.environ.get("BENCH_DATABASE_URL")
    db = Database.start("booking_bench", external)
    servers: list[Server] = []
    try:
        benchkit.migrate(db)
        conn = await benchkit.connect(db)
        try:
            if external:
                await benchkit.wipe(conn)
            report["postgres"] = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        world = await benchkit.seed(db)
        secret = benchkit.new_secret()
        bench = Bench(args, wrk, world, benchkit.mint_token(secret, world.client_id), db)

        api = benchkit.start_api(db, secret, args.workers, args.pool_size)
        servers.append(api)
        if args.compare_locks:
            row = benchkit.start_api(db, secret, args.workers, args.pool_size, "row")
            servers.append(row)
            rounds, checks = await lock_rounds(bench, api, row)
            report["calendar_day_locks"] = reporting.lock_figures(rounds)
            report["checks"] = checks
            return 0 if all(c["ok"] for c in checks.values()) else 1
        print(
            f"API on {api.base_url} ({args.workers} worker(s)); wrk {args.connections} "
            f"connections, {args.threads} threads, {args.duration} s per run\n",
            flush=True,
        )

        stamp = report["started_at"].replace(":", "").replace("-", "")
        profile = benchkit.RESULTS_DIR / f"profile-{stamp}.txt" if args.profile else None
        reference_server = benchkit.start_reference(db, args.workers, args.reference_pool_size)
        servers.append(reference_server)
        rounds, checks = await booking_rounds(bench, api, reference_server, profile)
        reference_server.stop()
        vacancies = bench.vacancies_run("(b) vacancies, API", api)
        bench.warm_up("bare.lua", api)
        bare = bench.run_wrk("(c) bare, API (no db)", "bare.lua", api, args.duration)

        dense = await dense_phase(bench, api, "(empty)")
        if not args.skip_range:
            report["range_vacancies"] = await range_phase(
                db, api, world, bench.token, args.timing_requests // 2, "(empty)"
            )
        await bench.reset()

        report.update(reporting.booking_figures(rounds, vacancies, bare))
        report["checks"] = checks
        report["dense_vacancies"] = {"empty": dense}
        if profile is not None:
            report["profile"] = str(profile.relative_to(benchkit.ROOT))

        if not args.skip_growth:
            growth = await growth_phase(args, bench, api, secret, servers, checks)
            api = growth.pop("api")
            report["growth"] = growth
            report["dense_vacancies"]["1m"] = growth.pop("dense_1m")
            report["explain"] = growth.pop("explain")

        if not args.skip_customers:
            print("\nFind a customer record by key field ...", flush=True)
            report["customer_query"] = await customer_query_phase(
                db, api, world, secret, args.customer_rows, args.timing_requests
            )

        if not args.skip_webhooks:
            print("\nWebhooks: the event's CPU, commit to receiver at 200 events/s ...", flush=True)
            api.stop()  # its deliverer would also take the phase's events
            figures = await webhooks_phase(db)
            report["webhooks"] = reporting.webhook_figures(figures, report["ratios"])

        report["targets"] = reporting.evaluate_targets(report)
        return 0 if all(c["ok"] for c in checks.values()) else 1
    finally:
        for server in reversed(servers):
            server.stop()
        db.stop()


def main() -> int:
    args = parse_args()
    wrk = find_wrk()
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make bench BENCH_ARGS='" + " ".join(sys.argv[1:]) + "'",
        "argv": sys.argv,
        "settings": {
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "pool_size": args.pool_size,
            "reference_pool_size": args.reference_pool_size,
            "growth_rows": None if args.skip_growth else args.growth_rows,
            "webhooks": not args.skip_webhooks,
        },
        "machine": reporting.machine(),
    }
    status = 1
    try:
        status = asyncio.run(run(args, wrk, report))
    finally:
        report["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        report["exit_status"] = status
        path = reporting.write(report, started)
        reporting.print_summary(report)
        print(f"\nwrote {path.relative_to(benchkit.ROOT)} and bench/results/latest.json")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
