"""`make bench`: throughput and latency of the booking API, checked against a floor and a
reference, with the database's invariants verified after every booking run.

1. Starts the embedded PostgreSQL (database `booking_bench`, recreated) unless BENCH_DATABASE_URL
   is set (that database is wiped), migrates it and seeds a bench organization with SQL.
2. Starts the API (uvicorn, uvloop, httptools, no access log, --workers N) and drives it with wrk:
   (a) book distinct vacant slots, (b) GET vacancies, (c) POST /bench/bare (no database),
   then (d) books through bench/reference_app.py (raw ASGI on asyncpg) with the same script.
   After every booking run the database is checked (never over capacity, tickets gapless) and
   reset (TRUNCATE appointment, ticket_counter).
3. Server time (Server-Timing) of the vacancies of a day with 500 appointments.
4. Growth: (a) and (b) again with --growth-rows appointments (default 1,000,000) on past dates,
   the ratios to the empty table, and EXPLAIN (ANALYZE, BUFFERS) of the hot queries.
5. Prints everything and writes bench/results/<UTC timestamp>.json and bench/results/latest.json.

See bench/README.md for how to read the output and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
import httpx
from benchkit import Database, Server, World

TARGETS = {
    "booking_vs_reference_rps": 0.5,  # booking rps >= 50 % of the reference's
    "booking_p99_ms": 50.0,  # at 32 connections
    "dense_vacancies_server_ms": 5.0,  # median Server-Timing, day with 500 appointments
    "growth_ratio": 1.2,  # 1M rows vs empty: p50 ratio and rps ratio
}


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
        "--profile",
        action="store_true",
        help="record the API workers with py-spy during booking run (a) (collapsed stacks in "
        "bench/results/)",
    )
    args = parser.parse_args()
    if args.duration < 10:
        parser.error("--duration must be at least 10 seconds")
    return args


# --- wrk -----------------------------------------------------------------------------------------


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    print(
        "wrk is not installed. Install it and run again:\n"
        "  Debian/Ubuntu: sudo apt-get install -y wrk\n"
        "  macOS:         brew install wrk\n"
        "  from source:   https://github.com/wg/wrk",
        file=sys.stderr,
    )
    raise SystemExit(2)


@dataclass
class WrkResult:
    name: str
    target: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    requests: int
    ok_2xx: int
    conflict_409: int
    other: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    per_thread: list[dict[str, int]]
    server_cpu_ms_per_request: float
    load_average: list[float]
    seconds: int
    output: str = field(repr=False, default="")

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rps:9.1f} req/s   p50 {self.p50_ms:7.2f} ms   "
            f"p99 {self.p99_ms:7.2f} ms   2xx {self.ok_2xx:6d}   409 {self.conflict_409:4d}   "
            f"other {self.other:4d}   cpu {self.server_cpu_ms_per_request:.2f} ms/req"
        )


SUMMARY = re.compile(r"^BENCH_SUMMARY (.*)$", re.M)
LATENCY = re.compile(r"^BENCH_LATENCY (.*)$", re.M)
STATUS = re.compile(r"^BENCH_STATUS thread=(\d+)(.*)$", re.M)


def _fields(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=") for item in text.split())}


def parse_wrk(name: str, target: str, output: str, seconds: int, cpu_seconds: float) -> WrkResult:
    summary_match, latency_match = SUMMARY.search(output), LATENCY.search(output)
    if not summary_match or not latency_match:
        raise RuntimeError(f"wrk output without the bench report:\n{output}")
    summary, latency = _fields(summary_match[1]), _fields(latency_match[1])
    per_thread: list[dict[str, int]] = []
    statuses: dict[str, int] = {}
    for _, counts in STATUS.findall(output):
        thread = {k: int(v) for k, v in _fields(counts).items()}
        per_thread.append(thread)
        for status, count in thread.items():
            statuses[status] = statuses.get(status, 0) + count
    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    conflict = statuses.get("409", 0)
    errors = {k: int(summary[k]) for k in ("connect", "read", "write", "timeout")}
    return WrkResult(
        name=name,
        target=target,
        rps=round(summary["requests"] / (summary["duration_us"] / 1e6), 1),
        p50_ms=latency["p50_us"] / 1000,
        p90_ms=latency["p90_us"] / 1000,
        p99_ms=latency["p99_us"] / 1000,
        max_ms=latency["max_us"] / 1000,
        mean_ms=round(latency["mean_us"] / 1000, 3),
        requests=int(summary["requests"]),
        ok_2xx=ok,
        conflict_409=conflict,
        other=sum(statuses.values()) - ok - conflict + sum(errors.values()),
        statuses=dict(sorted(statuses.items())),
        socket_errors=errors,
        per_thread=per_thread,
        server_cpu_ms_per_request=round(cpu_seconds * 1000 / max(1, int(summary["requests"])), 3),
        load_average=[round(x, 2) for x in os.getloadavg()],
        seconds=seconds,
        output=output,
    )


@dataclass
class Bench:
    args: argparse.Namespace
    wrk: str
    world: World
    token: str
    db: Database

    def run_wrk(
        self, name: str, script: str, server: Server, seconds: int, *, quiet: bool = False
    ) -> WrkResult:
        command = [
            self.wrk,
            f"--threads={self.args.threads}",
            f"--connections={self.args.connections}",
            f"--duration={seconds}s",
            "--latency",
            f"--script={benchkit.BENCH_DIR / script}",
            server.base_url,
        ]
        env = {**os.environ, **benchkit.wrk_env(self.world, self.token, self.args.threads)}
        cpu_before = server.cpu_seconds()
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        cpu = server.cpu_seconds() - cpu_before
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        result = parse_wrk(name, server.name, done.stdout + done.stderr, seconds, cpu)
        if not quiet:
            print(result.line(), flush=True)
        return result

    def warm_up(self, script: str, server: Server) -> None:
        if self.args.warmup > 0:
            self.run_wrk("warm-up", script, server, self.args.warmup, quiet=True)

    async def booking_run(
        self, name: str, server: Server, *, profile_to: Path | None = None
    ) -> tuple[WrkResult, dict[str, Any]]:
        """Warm up, reset, book for --duration seconds, verify the invariants, reset."""
        self.warm_up("book.lua", server)
        await self.reset()
        profiler = start_profiler(server, self.args.duration, profile_to) if profile_to else None
        try:
            result = self.run_wrk(name, "book.lua", server, self.args.duration)
            if profiler is not None:
                profiler.wait(timeout=60)
        finally:
            if profiler is not None and profiler.poll() is None:
                profiler.terminate()
                profiler.wait(timeout=10)
        conn = await benchkit.connect(self.db)
        try:
            await benchkit.settle(conn)
            check = await benchkit.verify(conn)
            rows = await conn.fetchval(
                "SELECT count(*) FROM appointment WHERE on_date >= $1", self.world.first_date
            )
        finally:
            await conn.close()
        check["rows_inserted"] = rows
        print(f"  {benchkit.verdict_line(check)}; {rows} rows for {result.ok_2xx} 2xx", flush=True)
        await self.reset()
        return result, check

    def vacancies_run(self, name: str, server: Server) -> WrkResult:
        self.warm_up("vacancies.lua", server)
        return self.run_wrk(name, "vacancies.lua", server, self.args.duration)

    async def reset(self) -> None:
        conn = await benchkit.connect(self.db)
        try:
            await benchkit.reset_bookings(conn, self.world)
        finally:
            await conn.close()


def start_profiler(server: Server, seconds: int, output: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("  (--profile: py-spy is not installed; .venv/bin/pip install py-spy)", flush=True)
        return None
    command = [py_spy, "record", "--pid", str(server.process.pid), "--subprocesses"]
    command += ["--duration", str(seconds), "--rate", "250", "--format", "raw"]
    command += ["--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- server time of a dense day ---------------------------------------------------------------


SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


async def dense_vacancies_timing(
    server: Server, world: World, token: str, on_date: date, requests: int
) -> dict[str, Any]:
    """Sequential GET vacancies of the dense calendar-day; the server's own time per request."""
    path = (
        f"/{world.application_id}/calendars/{world.dense_service}/{on_date}/0/vacancies"
        f"?serviceTypeId={world.dense_type}"
    )
    server_ms: list[float] = []
    client_ms: list[float] = []
    slots = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        for _ in range(20):  # warm-up: the configuration cache, the connection pool
            (await client.get(path)).raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(path)
            client_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            match = SERVER_TIMING.search(response.headers.get("server-timing", ""))
            if match is None:
                raise RuntimeError("no Server-Timing header in the vacancies answer")
            server_ms.append(float(match[1]))
            slots = len(response.json()["slots"])
    return {
        "date": on_date.isoformat(),
        "appointments": benchkit.DENSE_APPOINTMENTS,
        "requests": requests,
        "slots_returned": slots,
        "server_median_ms": round(benchkit.percentile(server_ms, 50), 2),
        "server_p99_ms": round(benchkit.percentile(server_ms, 99), 2),
        "server_max_ms": round(max(server_ms), 2),
        "client_median_ms": round(benchkit.percentile(client_ms, 50), 2),
        "client_p99_ms": round(benchkit.percentile(client_ms, 99), 2),
    }


async def dense_phase(bench: Bench, api: Server, label: str) -> dict[str, Any]:
    on_date = bench.world.first_date + timedelta(days=3)
    conn = await benchkit.connect(bench.db)
    try:
        await benchkit.insert_dense_day(conn, bench.world, on_date)
        await conn.execute("ANALYZE appointment")
    finally:
        await conn.close()
    timing = await dense_vacancies_timing(
        api, bench.world, bench.token, on_date, bench.args.timing_requests
    )
    print(
        f"{'vacancies, 500-appt day ' + label:<28} server median {timing['server_median_ms']} ms"
        f"   p99 {timing['server_p99_ms']} ms   (client median {timing['client_median_ms']} ms,"
        f" {timing['slots_returned']} slots)",
        flush=True,
    )
    return timing


# --- EXPLAIN of the hot queries ------------------------------------------------------------------


async def explain_hot_queries(db: Database, world: World, dense_date: date) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the app itself sends: they are recorded by
    running booking.book_appointment, calendars.vacancies and booking.booked_intervals on a
    connection that notes every statement, then explained in a transaction rolled back."""
    from booking.service import booking, calendars
    from booking.service.catalog import load_catalog
    from booking.settings import Settings
    from booking.store.db import Database as AppDatabase

    settings = Settings(jwt_dev_secret="unused-" * 8, database_pool_size=2)
    app_db = await AppDatabase.open(settings, db.url)
    service_id = world.services[0][0]
    past_day = world.first_date - timedelta(days=2)
    explained: dict[str, Any] = {}
    try:
        async with app_db.read() as read:
            catalog = await load_catalog(read, world.organization_id)
        assert catalog is not None
        now = datetime.now(UTC)
        async with app_db.driver() as conn:

            async def record(fn: Any) -> list[tuple[str, tuple[Any, ...]]]:
                recorder = RecordingConnection(conn)
                transaction = conn.transaction()
                await transaction.start()
                try:
                    await fn(recorder)
                finally:
                    await transaction.rollback()
                return recorder.calls

            vacancy_calls = await record(
                lambda c: calendars.vacancies(
                    c, catalog, world.dense_service, dense_date, 0, world.dense_type, now
                )
            )
            vacant = await calendars.vacancies(
                conn, catalog, world.dense_service, dense_date, 0, world.dense_type, now
            )
            command = booking.BookAppointment(
                service_id=world.dense_service,
                on_date=dense_date,
                cu_index=0,
                service_type_id=world.dense_type,
                start_minute=vacant.slots[len(vacant.slots) // 2],
                channel="Phone",
                contact_phone="020 7946 0018",
                contact_email="bench@example.com",
            )
            checked = booking.check_booking(catalog, command, now)
            # The lock is taken in the BEGIN of booking.calendar_transaction; shown on its own.
            lock = (
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                (f"calendar:{world.dense_service}:0:{dense_date.isoformat()}",),
            )
            booking_calls = [lock] + await record(
                lambda c: booking.book_appointment(c, catalog, world.application_id, checked, now)
            )
            typical_calls = await record(
                lambda c: booking.booked_intervals(c, service_id, 0, past_day)
            )
            groups = {
                "booking (500-appointment day)": booking_calls,
                "vacancies read (500-appointment day)": vacancy_calls,
                f"booked intervals, typical day ({past_day}, 54 rows)": typical_calls,
            }
            for group, calls in groups.items():
                transaction = conn.transaction()
                await transaction.start()
                try:
                    explained[group] = [await explain(conn, sql, args) for sql, args in calls]
                finally:
                    await transaction.rollback()
    finally:
        await app_db.close()
    return explained


class RecordingConnection:
    """Forwards the statements of an asyncpg connection and notes each (SQL, arguments)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.calls.append((sql, args))
        return await self.conn.fetchval(sql, *args)


async def explain(conn: Any, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    plan = "\n".join(row[0] for row in rows)
    return {"sql": " ".join(sql.split()), "parameters": _jsonable(list(args)), "plan": plan}


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


# --- the run -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "uname": uname.stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": sys.version.split()[0],
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


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
            world = await benchkit.seed(conn)
            report["postgres"] = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        secret = benchkit.new_secret()
        bench = Bench(args, wrk, world, benchkit.mint_token(secret, world.client_id), db)

        api = benchkit.start_api(db, secret, args.workers, args.pool_size)
        servers.append(api)
        print(
            f"API on {api.base_url} ({args.workers} worker(s)); wrk {args.connections} "
            f"connections, {args.threads} threads, {args.duration} s per run\n",
            flush=True,
        )

        stamp = report["started_at"].replace(":", "").replace("-", "")
        profile = benchkit.RESULTS_DIR / f"profile-{stamp}.txt" if args.profile else None
        # (a) and (d) alternate (a, d, then d, a, ...) so that a machine that slows down or
        # speeds up meanwhile weighs on both alike; a/d is the ratio of the medians.
        reference_server = benchkit.start_reference(db, args.workers, args.reference_pool_size)
        servers.append(reference_server)
        sides = {
            "booking": ("(a) booking, API", api),
            "reference": ("(d) booking, reference", reference_server),
        }
        rounds: dict[str, list[WrkResult]] = {"booking": [], "reference": []}
        checks: dict[str, Any] = {}
        for round_ in range(1, args.rounds + 1):
            for side in ["booking", "reference"] if round_ % 2 else ["reference", "booking"]:
                label, server = sides[side]
                result, check = await bench.booking_run(
                    f"{label}, round {round_}",
                    server,
                    profile_to=profile if side == "booking" and round_ == 1 else None,
                )
                rounds[side].append(result)
                checks[f"{side}_round_{round_}"] = check
        reference_server.stop()
        vacancies = bench.vacancies_run("(b) vacancies, API", api)
        bench.warm_up("bare.lua", api)
        bare = bench.run_wrk("(c) bare, API (no db)", "bare.lua", api, args.duration)

        dense = await dense_phase(bench, api, "(empty)")
        await bench.reset()

        booking_rps = statistics.median(r.rps for r in rounds["booking"])
        reference_rps = statistics.median(r.rps for r in rounds["reference"])
        # The figures of record: the median round of each (by p99 for the API, whose p99 is a
        # target; by req/s for the reference). A slow spell of the machine spoils one round.
        booking = median_run(rounds["booking"], lambda r: r.p99_ms)
        reference = median_run(rounds["reference"], lambda r: r.rps)
        runs = {"booking": booking, "vacancies": vacancies, "bare": bare, "reference": reference}
        report["runs"] = {k: _run_json(v) for k, v in runs.items()}
        report["rounds"] = {k: [_run_json(r) for r in rs] for k, rs in rounds.items()}
        report["checks"] = checks
        report["dense_vacancies"] = {"empty": dense}
        report["ratios"] = {
            "booking_over_bare_rps": ratio(booking_rps, bare.rps),
            "booking_over_reference_rps": ratio(booking_rps, reference_rps),
            "booking_median_rps": round(booking_rps, 1),
            "reference_median_rps": round(reference_rps, 1),
        }
        if profile is not None:
            report["profile"] = str(profile.relative_to(benchkit.ROOT))

        if not args.skip_growth:
            growth = await growth_phase(args, bench, api, secret, servers, checks)
            api = growth.pop("api")
            report["growth"] = growth
            report["dense_vacancies"]["1m"] = growth.pop("dense_1m")
            report["explain"] = growth.pop("explain")

        report["targets"] = evaluate_targets(report)
        return 0 if all(c["ok"] for c in checks.values()) else 1
    finally:
        for server in reversed(servers):
            server.stop()
        db.stop()


async def growth_phase(
    args: argparse.Namespace,
    bench: Bench,
    api: Server,
    secret: str,
    servers: list[Server],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The same runs on the empty table and on a copy of the database holding --growth-rows
    past appointments, alternated (empty, 1M, 1M, empty, ...) on two API servers, so that a
    machine that slows down or speeds up meanwhile weighs on both sides alike; the ratios are
    those of the medians."""
    db, world = bench.db, bench.world
    print(
        f"\nGrowth: a copy of the database with {args.growth_rows:,} appointments on past dates "
        "...",
        flush=True,
    )
    started = time.perf_counter()
    api.stop()  # CREATE DATABASE ... TEMPLATE needs the source database idle
    grown_db = await benchkit.copy_database(db, db.name + "_grown")
    try:
        conn = await benchkit.connect(grown_db)
        try:
            await benchkit.insert_past_appointments(conn, world, args.growth_rows)
            await conn.execute("VACUUM (ANALYZE) appointment")
            # Write the bulk load's dirty pages out now, not during the measured runs.
            await conn.execute("CHECKPOINT")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('appointment'))"
            )
        finally:
            await conn.close()
        print(
            f"  done in {time.perf_counter() - started:.1f} s (table with indexes: {size})",
            flush=True,
        )
        api = benchkit.start_api(db, secret, args.workers, args.pool_size)
        servers.append(api)
        grown_api = benchkit.start_api(grown_db, secret, args.workers, args.pool_size)
        servers.append(grown_api)
        grown_bench = Bench(args, bench.wrk, world, bench.token, grown_db)
        grown_label = f"{args.growth_rows:,} rows"
        sides = {"empty": (bench, api, "empty"), "1m": (grown_bench, grown_api, grown_label)}
        results: dict[str, dict[str, list[WrkResult]]] = {
            side: {"booking": [], "vacancies": []} for side in sides
        }
        for round_ in range(1, args.growth_rounds + 1):
            order = ["empty", "1m"] if round_ % 2 else ["1m", "empty"]
            for side in order:
                side_bench, server, label = sides[side]
                result, check = await side_bench.booking_run(
                    f"(a) booking, {label}, round {round_}", server
                )
                results[side]["booking"].append(result)
                checks[f"booking_{side}_round_{round_}"] = check
            for side in order:
                side_bench, server, label = sides[side]
                results[side]["vacancies"].append(
                    side_bench.vacancies_run(f"(b) vacancies, {label}, round {round_}", server)
                )
        dense_grown = await dense_phase(grown_bench, grown_api, "(1M)")
        try:
            explained = await explain_hot_queries(
                grown_db, world, world.first_date + timedelta(days=3)
            )
        except Exception as error:  # it calls src/ internals: report, do not lose the run
            print(f"  EXPLAIN failed: {error!r}", flush=True)
            explained = {"error": repr(error)}
        grown_api.stop()
    finally:
        await benchkit.drop_database(grown_db)

    def median(side: str, kind: str, field: str) -> float:
        return round(statistics.median(getattr(r, field) for r in results[side][kind]), 2)

    medians = {
        side: {
            "booking_rps": median(side, "booking", "rps"),
            "booking_p50_ms": median(side, "booking", "p50_ms"),
            "vacancies_rps": median(side, "vacancies", "rps"),
            "vacancies_p50_ms": median(side, "vacancies", "p50_ms"),
        }
        for side in sides
    }
    empty, grown = medians["empty"], medians["1m"]
    return {
        "api": api,
        "rows": args.growth_rows,
        "table_size": size,
        "rounds": args.growth_rounds,
        "runs": {
            side: {kind: [_run_json(r) for r in rs] for kind, rs in kinds.items()}
            for side, kinds in results.items()
        },
        "medians": medians,
        "booking_p50_ratio": ratio(grown["booking_p50_ms"], empty["booking_p50_ms"]),
        "booking_rps_ratio": ratio(empty["booking_rps"], grown["booking_rps"]),
        "vacancies_p50_ratio": ratio(grown["vacancies_p50_ms"], empty["vacancies_p50_ms"]),
        "vacancies_rps_ratio": ratio(empty["vacancies_rps"], grown["vacancies_rps"]),
        "dense_1m": dense_grown,
        "explain": explained,
    }


def median_run(results: list[WrkResult], by: Callable[[WrkResult], float]) -> WrkResult:
    """The middle run by `by` (the lower middle of an even number)."""
    return sorted(results, key=by)[(len(results) - 1) // 2]


def _run_json(result: WrkResult) -> dict[str, Any]:
    data = asdict(result)
    data.pop("output")
    return data


def evaluate_targets(report: dict[str, Any]) -> dict[str, Any]:
    runs, ratios = report["runs"], report["ratios"]
    targets: dict[str, Any] = {
        "booking >= 50% of reference rps": {
            "value": ratios["booking_over_reference_rps"],
            "target": TARGETS["booking_vs_reference_rps"],
            "met": (ratios["booking_over_reference_rps"] or 0)
            >= TARGETS["booking_vs_reference_rps"],
        },
        "booking p99 <= 50 ms (the median round)": {
            "value": runs["booking"]["p99_ms"],
            "target": TARGETS["booking_p99_ms"],
            "met": runs["booking"]["p99_ms"] <= TARGETS["booking_p99_ms"],
        },
        "vacancies of a 500-appointment day <= 5 ms server time (median)": {
            "value": report["dense_vacancies"]["empty"]["server_median_ms"],
            "target": TARGETS["dense_vacancies_server_ms"],
            "met": report["dense_vacancies"]["empty"]["server_median_ms"]
            <= TARGETS["dense_vacancies_server_ms"],
        },
    }
    growth = report.get("growth")
    if growth:
        worst = max(
            growth["booking_p50_ratio"] or 0,
            growth["booking_rps_ratio"] or 0,
            growth["vacancies_p50_ratio"] or 0,
            growth["vacancies_rps_ratio"] or 0,
        )
        targets["1M-row ratio <= 1.2 (worst of p50 and rps, booking and vacancies)"] = {
            "value": worst,
            "target": TARGETS["growth_ratio"],
            "met": worst <= TARGETS["growth_ratio"],
        }
    return targets


def print_summary(report: dict[str, Any]) -> None:
    ratios = report.get("ratios", {})
    if ratios:
        print(
            f"\nratios: booking/bare (a/c) {ratios['booking_over_bare_rps']}   "
            f"booking/reference (a/d) {ratios['booking_over_reference_rps']}   (medians: "
            f"booking {ratios['booking_median_rps']} req/s, "
            f"reference {ratios['reference_median_rps']} req/s)"
        )
    growth = report.get("growth")
    if growth:
        print(
            f"growth ({growth['rows']:,} rows, {growth['table_size']}, medians of "
            f"{growth['rounds']} alternated rounds), 1M / empty: booking p50 "
            f"x{growth['booking_p50_ratio']}, rps x{growth['booking_rps_ratio']} (empty/1M); "
            f"vacancies p50 x{growth['vacancies_p50_ratio']}, "
            f"rps x{growth['vacancies_rps_ratio']} (empty/1M)"
        )
    for name, checked in report.get("checks", {}).items():
        print(f"invariants after {name}: {'OK' if checked['ok'] else 'BROKEN'}")
    for name, target in report.get("targets", {}).items():
        print(f"target {name}: {target['value']} -> {'met' if target['met'] else 'NOT met'}")
    for group, statements in report.get("explain", {}).items():
        if group == "error":
            print(f"\nEXPLAIN failed: {statements}")
            continue
        print(f"\nEXPLAIN (ANALYZE, BUFFERS): {group}")
        for statement in statements:
            print(f"  {statement['sql'][:160]}{' ...' if len(statement['sql']) > 160 else ''}")
            print("    " + statement["plan"].replace("\n", "\n    "))


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
        },
        "machine": machine(),
    }
    status = 1
    try:
        status = asyncio.run(run(args, wrk, report))
    finally:
        report["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        report["exit_status"] = status
        benchkit.RESULTS_DIR.mkdir(exist_ok=True)
        path = benchkit.RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        text = json.dumps(report, indent=2, default=str)
        path.write_text(text + "\n")
        (benchkit.RESULTS_DIR / "latest.json").write_text(text + "\n")
        print_summary(report)
        print(f"\nwrote {path.relative_to(benchkit.ROOT)} and bench/results/latest.json")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
