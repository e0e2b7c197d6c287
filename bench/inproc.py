"""In-process profiler of the booking route: no HTTP, no wrk, no other process competing for the
CPU but PostgreSQL. The ASGI app is called directly, `--concurrency` requests at a time, and the
process CPU time per request is printed (the figure that decides throughput on one worker), then,
with `--profile`, the cProfile functions that cost the most.

    .venv/bin/python bench/inproc.py                     # booking, 4000 requests
    .venv/bin/python bench/inproc.py --route vacancies --profile
    .venv/bin/python bench/inproc.py --route bare
    .venv/bin/python bench/inproc.py --route range --requests 100 --concurrency 1 --profile
    .venv/bin/python bench/inproc.py --without-metrics   # what the metrics middleware costs
    .venv/bin/python bench/inproc.py --without-rate-limits   # what checking the limits costs
    .venv/bin/python bench/inproc.py --without-contact-checks   # what phone and email cost
    .venv/bin/python bench/inproc.py --rounds 6 --against-reference   # the same bookings, the
                                                    # API and reference_app.py in turn

Uses the embedded PostgreSQL (database `booking_inproc`, recreated) or BENCH_DATABASE_URL. A
development tool for finding where the time goes; `make bench` is the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import orjson

sys.path.insert(0, os.path.dirname(__file__))
import benchkit
import vacancy_range


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--route", choices=["booking", "vacancies", "range", "bare"], default="booking"
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds, one line each")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured requests")
    parser.add_argument(
        "--without-metrics",
        action="store_true",
        help="leave out the request-metrics middleware (to measure what it costs)",
    )
    parser.add_argument(
        "--without-rate-limits",
        action="store_true",
        help="no rate limits at all (to measure what checking them costs)",
    )
    parser.add_argument(
        "--without-contact-checks",
        action="store_true",
        help="take the phone number and email as sent, unchecked (to measure what checking costs)",
    )
    parser.add_argument(
        "--against-reference",
        action="store_true",
        help="each round books with the API and with reference_app.py in turn (booking only)",
    )
    parser.add_argument("--top", type=int, default=45, help="functions shown by --profile")
    return parser.parse_args()


def asgi_call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> Callable[[], Any]:
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def call() -> int:
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app({**scope}, receive, send)
        return status

    return call


def requests_for(route: str, world: benchkit.World, token: str, count: int) -> list[Any]:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    app_id = world.application_id
    calls: list[tuple[str, str, bytes]] = []
    dates = world.dates(400)
    for k in range(count):
        service_index, cu = world.places[k % len(world.places)]
        service_id, type_id = world.services[service_index]
        rest = k // len(world.places)
        start = benchkit.STARTS[rest % len(benchkit.STARTS)]
        day = dates[rest // len(benchkit.STARTS)]
        body = orjson.dumps(
            {
                "serviceTypeId": str(type_id),
                "startTime": start,
                "channel": "FaceToFace",
                "contactPhoneNumber": "020 7946 0018",
                "contactEmail": "bench@example.com",
            }
        )
        if route == "booking":
            path = f"/{app_id}/calendars/{service_id}/{day}/{cu}/appointments"
            calls.append(("POST", path, body))
        elif route == "range":  # vacancy_range.py's: 31 days x 10 units, 500 appointments a day
            service_id, type_id = world.services[vacancy_range.SERVICE]
            last = world.first_date + timedelta(days=vacancy_range.DAYS - 1)
            path = f"/{app_id}/calendars/{service_id}/vacancies?serviceTypeId={type_id}"
            calls.append(("GET", f"{path}&from={world.first_date}&to={last}", b""))
        elif route == "vacancies":
            day = dates[random.randrange(7)]
            path = f"/{app_id}/calendars/{service_id}/{day}/{cu}/vacancies?serviceTypeId={type_id}"
            calls.append(("GET", path, b""))
        else:
            calls.append(("POST", "/bench/bare", body))
    return [(m, p, headers, b) for m, p, b in calls]


async def drive(app: Any, calls: list[Any], concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    queue = iter(calls)

    async def worker() -> None:
        for method, path, headers, body in queue:
            statuses[await asgi_call(app, method, path, headers, body)()] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


@asynccontextmanager
async def reference_started(db: benchkit.Database) -> AsyncIterator[Any]:
    """reference_app.py's ASGI app in this process, through its lifespan (its pool size is its
    default, as `make bench` gives it)."""
    os.environ["REFERENCE_DATABASE_URL"] = db.dsn
    import reference_app

    app = reference_app.ReferenceApp()
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    done: asyncio.Queue[str] = asyncio.Queue()

    async def send(message: dict[str, str]) -> None:
        done.put_nowait(message["type"])

    lifespan = asyncio.create_task(app({"type": "lifespan"}, messages.get, send))
    messages.put_nowait({"type": "lifespan.startup"})
    started = asyncio.create_task(done.get())
    await asyncio.wait({lifespan, started}, return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():  # it failed to start: its exception says why
        started.cancel()
        lifespan.result()
    try:
        yield app
    finally:
        messages.put_nowait({"type": "lifespan.shutdown"})
        await lifespan


async def against_reference(
    api: Any, reference: Any, calls: list[Any], rounds: int, per_round: int, concurrency: int
) -> None:
    """Alternated rounds (API first, then the reference first, ...) of distinct bookings; the
    CPU per booking of each and their ratio, with the medians."""
    cpu: dict[str, list[float]] = {"api": [], "reference": []}
    apps = {"api": api, "reference": reference}
    taken = 0
    for n in range(rounds):
        for name in ("api", "reference") if n % 2 == 0 else ("reference", "api"):
            measured = calls[taken : taken + per_round]
            taken += per_round
            cpu0 = time.process_time()
            statuses = await drive(apps[name], measured, concurrency)
            cpu[name].append((time.process_time() - cpu0) / per_round * 1000)
            print(
                f"round {n + 1} {name:9s} cpu {cpu[name][-1]:.3f} ms/booking, "
                f"statuses {dict(statuses)}",
                flush=True,
            )
    api_ms, reference_ms = (statistics.median(cpu[name]) for name in ("api", "reference"))
    print(
        f"medians: API {api_ms:.3f} ms, reference {reference_ms:.3f} ms per booking; "
        f"API / reference {api_ms / reference_ms:.2f} (per round: "
        + ", ".join(f"{a / r:.2f}" for a, r in zip(cpu["api"], cpu["reference"], strict=True))
        + ")"
    )


async def measured_rounds(app: Any, calls: list[Any], args: argparse.Namespace) -> None:
    per_round = args.requests
    for n in range(args.rounds):
        measured = calls[n * per_round : (n + 1) * per_round]
        profiler = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        statuses = await drive(app, measured, args.concurrency)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(
            f"{args.route}: {per_round} requests, concurrency {args.concurrency}: "
            f"cpu {cpu / per_round * 1000:.3f} ms/req, wall {per_round / wall:.0f} req/s, "
            f"statuses {dict(statuses)}",
            flush=True,
        )
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)


async def main() -> int:
    args = parse_args()
    if args.against_reference and (args.route != "booking" or args.profile):
        print("--against-reference measures the booking route, without --profile")
        return 2
    db = benchkit.Database.start("booking_inproc", os.environ.get("BENCH_DATABASE_URL"))
    try:
        benchkit.migrate(db)
        world = await benchkit.seed(db)
        conn = await benchkit.connect(db)
        if args.route == "range":
            await vacancy_range.insert_range_days(conn, world)
        secret = benchkit.new_secret()
        token = benchkit.mint_token(secret, world.client_id)

        from booking.api.app import create_app
        from booking.settings import Settings

        settings = Settings(
            jwt_mode="dev",
            jwt_dev_secret=secret,
            enable_bench_routes=True,
            log_level="WARNING",
            # Checked on every request, never refusing: as in `make bench` (benchkit.start_api).
            rate_limit_application="" if args.without_rate_limits else "1000000000/second",
            rate_limit_client_address="" if args.without_rate_limits else "1000000000/second",
        )
        app = create_app(settings, db.url, access_log=False)
        if args.without_contact_checks:
            from booking.service import rules

            rules.normalize_phone = lambda raw, region, broken: raw
            rules.normalize_email = lambda raw, broken: raw
        if args.without_metrics:
            from booking.api.metrics import MetricsMiddleware

            # Starlette types `cls` with its constructor's unbound ParamSpec: compared as an object.
            app.user_middleware = [
                m for m in app.user_middleware if cast(object, m.cls) is not MetricsMiddleware
            ]
        async with app.router.lifespan_context(app):
            if args.against_reference:
                calls = requests_for(
                    args.route, world, token, 500 + 2 * args.requests * args.rounds
                )
                async with reference_started(db) as reference:
                    await drive(app, calls[:250], args.concurrency)  # warm-up
                    await drive(reference, calls[250:500], args.concurrency)
                    await against_reference(
                        app, reference, calls[500:], args.rounds, args.requests, args.concurrency
                    )
            else:
                calls = requests_for(args.route, world, token, 500 + args.requests * args.rounds)
                await drive(app, calls[:500], args.concurrency)  # warm-up
                await measured_rounds(app, calls[500:], args)
        await benchkit.reset_bookings(conn, world)
        await conn.close()
    finally:
        db.stop()
    return 0


if __name__ == "__main__":
    import uvloop  # the event loop the server runs on

    raise SystemExit(uvloop.run(main()))
