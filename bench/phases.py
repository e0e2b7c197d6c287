"""The phases of `make bench`: wrk runs against a server (booking runs verified and reset), the
alternated booking rounds of the API and the reference, the server time of a dense day, and the
growth phase on a copy of the database with past appointments."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import benchkit
import httpx
from benchkit import Database, Server, World
from explain import explain_hot_queries
from report import ratio
from vacancy_range import range_growth
from wrk import WrkResult, parse_wrk


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


async def booking_rounds(
    bench: Bench, api: Server, reference: Server, profile_to: Path | None
) -> tuple[dict[str, list[WrkResult]], dict[str, Any]]:
    """(a) and (d) alternated (a, d, then d, a, ...) for --rounds rounds, so that a machine that
    slows down or speeds up meanwhile weighs on both alike; every run verified. With
    `profile_to`, the API's first round is recorded with py-spy."""
    sides = {
        "booking": ("(a) booking, API", api),
        "reference": ("(d) booking, reference", reference),
    }
    rounds: dict[str, list[WrkResult]] = {"booking": [], "reference": []}
    checks: dict[str, Any] = {}
    for round_ in range(1, bench.args.rounds + 1):
        for side in ["booking", "reference"] if round_ % 2 else ["reference", "booking"]:
            label, server = sides[side]
            result, check = await bench.booking_run(
                f"{label}, round {round_}",
                server,
                profile_to=profile_to if side == "booking" and round_ == 1 else None,
            )
            rounds[side].append(result)
            checks[f"{side}_round_{round_}"] = check
    return rounds, checks


async def lock_rounds(
    bench: Bench, advisory: Server, row: Server
) -> tuple[dict[str, list[WrkResult]], dict[str, Any]]:
    """The booking run (a) on an API that locks calendar-days with an advisory lock and on one
    that locks the day's stamp row (CALENDAR_DAY_LOCK=row), alternated like `booking_rounds`;
    every run verified."""
    sides = {"advisory": advisory, "row": row}
    rounds: dict[str, list[WrkResult]] = {"advisory": [], "row": []}
    checks: dict[str, Any] = {}
    for round_ in range(1, bench.args.rounds + 1):
        for side in ["advisory", "row"] if round_ % 2 else ["row", "advisory"]:
            label = f"(a) booking, {side} lock, round {round_}"
            result, check = await bench.booking_run(label, sides[side])
            rounds[side].append(result)
            checks[f"{side}_lock_round_{round_}"] = check
    return rounds, checks


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
        range_grown = None
        if not args.skip_range:
            sides_of_range = {"empty": (db, api), "1m": (grown_db, grown_api)}
            range_grown = await range_growth(
                sides_of_range, world, bench.token, args.timing_requests // 4, args.growth_rounds
            )
            await bench.reset()
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
        value: float = statistics.median(getattr(r, field) for r in results[side][kind])
        return round(value, 2)

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
            side: {kind: [r.to_json() for r in rs] for kind, rs in kinds.items()}
            for side, kinds in results.items()
        },
        "medians": medians,
        "booking_p50_ratio": ratio(grown["booking_p50_ms"], empty["booking_p50_ms"]),
        "booking_rps_ratio": ratio(empty["booking_rps"], grown["booking_rps"]),
        "vacancies_p50_ratio": ratio(grown["vacancies_p50_ms"], empty["vacancies_p50_ms"]),
        "vacancies_rps_ratio": ratio(empty["vacancies_rps"], grown["vacancies_rps"]),
        "dense_1m": dense_grown,
        "range_vacancies": range_grown,
        "explain": explained,
    }
