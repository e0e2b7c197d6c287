"""What outbound webhooks cost: (1) the CPU a booking spends on writing its afterBookAppointment
event (bookings of services with the hook on against services without it, in this process,
alternated rounds, no HTTP); (2) the delay from the event's commit to its arrival at a real
receiver at a steady 200 events/s, delivered by a real server process.

    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --rate 200 --seconds 10 --bookings 800 --rounds 9

Alone, it uses the embedded PostgreSQL (database `booking_webhooks`, recreated) or
BENCH_DATABASE_URL. It is also the last phase of `make bench` (`webhooks_phase`, on the bench's
database, with an organization of its own; `--skip-webhooks` skips it).
The receiver is a separate process (an HTTP server of the standard library) that writes the
arrival time of each call; the delay is arrival minus the event's `created_at` (taken in its
transaction just before COMMIT), both from this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import benchkit

RECEIVER = textwrap.dedent(
    """
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    out = open(sys.argv[2], "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            out.write(f"{self.headers['webhook-id']} {time.time()}\\n")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def start_receiver(port: int, arrivals: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port), str(arrivals)], start_new_session=True
    )


def read_arrivals(arrivals: Path) -> dict[str, float]:
    """The first arrival time of each webhook-id."""
    arrived: dict[str, float] = {}
    for line in arrivals.read_text().splitlines():
        webhook_id, at = line.split()
        arrived.setdefault(webhook_id, float(at))
    return arrived


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=800, help="per round of (1)")
    parser.add_argument("--rounds", type=int, default=9, help="alternated rounds of (1)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second in (2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of (2)")
    return parser.parse_args(argv)


def hooked_document(receiver_url: str) -> tuple[benchkit.World, dict[str, Any]]:
    """The bench organization; its services 0-4 have afterBookAppointment on, 5-9 not."""
    world, document = benchkit.bench_organization()
    organization = document["organizations"][0]
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    organization["webhooks"] = {"baseUrl": receiver_url, "secrets": [secret]}
    for service in organization["services"][:5]:
        service["webhooks"] = ["afterBookAppointment"]
    return world, document


class Slots:
    """Distinct (service, cuIndex, date, start) of a set of services, in order."""

    def __init__(self, world: benchkit.World, services: range) -> None:
        self.world, self.services, self.n = world, services, 0

    def next(self) -> Any:
        from booking.domain import CalendarDay, Channel
        from booking.service.commands import BookAppointment

        per_day = len(self.services) * benchkit.UNITS_PER_SERVICE * len(benchkit.STARTS)
        day, rest = divmod(self.n, per_day)
        service, rest = divmod(rest, benchkit.UNITS_PER_SERVICE * len(benchkit.STARTS))
        unit, start = divmod(rest, len(benchkit.STARTS))
        self.n += 1
        service_id, type_id = self.world.services[self.services[service]]
        on_date = self.world.first_date.fromordinal(self.world.first_date.toordinal() + day)
        return BookAppointment(
            day=CalendarDay(service_id, unit, on_date),
            service_type_id=type_id,
            start_minute=benchkit.STARTS[start],
            channel=Channel.FACE_TO_FACE,
        )


async def cpu_round(db: Any, catalog: Any, world: benchkit.World, slots: Slots, args: Any) -> float:
    """Process CPU per booking, in ms."""
    from booking.service import appointments

    bookings: int = args.bookings
    commands = [slots.next() for _ in range(bookings)]
    queue = iter(commands)
    now = datetime.now(UTC)

    async def worker() -> None:
        for command in queue:
            await appointments.book(db, catalog, world.application_id, command, now)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return (time.process_time() - started) / bookings * 1000


async def seed_hooked(bench_db: benchkit.Database, receiver_url: str) -> benchkit.World:
    """Adds the hooked bench organization (`hooked_document`) to `bench_db`, through the app's
    configuration loader."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from booking.store.loader import ConfigDocument, apply_config

    world, document = hooked_document(receiver_url)
    engine = create_async_engine(bench_db.url)
    try:
        async with engine.begin() as conn:
            await apply_config(conn, ConfigDocument.model_validate(document))
    finally:
        await engine.dispose()
    return world


async def cpu_rounds(
    db: Any, catalog: Any, world: benchkit.World, on: Slots, off: Slots, args: Any
) -> dict[str, list[float]]:
    """(1): CPU per booking of each round, in ms, hook on (services 0-4) and off (5-9),
    alternated (on, off, then off, on, ...) after a warm-up of both. Many short rounds: a slow
    spell of the machine spoils a few of them on both sides alike, and the medians hold."""
    await cpu_round(db, catalog, world, on, args)
    await cpu_round(db, catalog, world, off, args)
    results: dict[str, list[float]] = {"on": [], "off": []}
    for n in range(args.rounds):
        order = [("on", on), ("off", off)] if n % 2 == 0 else [("off", off), ("on", on)]
        for name, slots in order:
            results[name].append(await cpu_round(db, catalog, world, slots, args))
    return results


def start_deliverer(bench_db: benchkit.Database) -> benchkit.Server:
    """A real server process of the API, which delivers the events (to 127.0.0.1)."""
    server = benchkit.Server(
        "booking API (delivering)",
        ["booking.api.app:app_from_env", "--factory"],
        {
            "DATABASE_URL": bench_db.url,
            "JWT_DEV_SECRET": benchkit.new_secret(),
            "LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        },
        workers=1,
    )
    server.wait_ready()
    return server


async def delivery_delays(
    db: Any, catalog: Any, world: benchkit.World, slots: Slots, args: Any, arrivals: Path
) -> tuple[int, int, list[float]]:
    """(2): books `args.rate` per second for `args.seconds` (an afterBookAppointment event each),
    waits (30 s at most) for their arrival; the bookings tried, the events written (a booking
    that failed wrote none) and the sorted delays from each event's commit to its first
    arrival, in seconds."""
    from booking.service import appointments

    total = int(args.rate * args.seconds)
    commands = [slots.next() for _ in range(total)]
    started = time.perf_counter()
    tasks = []
    for n, command in enumerate(commands):
        delay = started + n / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(
            asyncio.create_task(
                appointments.book(db, catalog, world.application_id, command, datetime.now(UTC))
            )
        )
    failed = [
        r for r in await asyncio.gather(*tasks, return_exceptions=True) if isinstance(r, Exception)
    ]
    if failed:  # a slow spell of the machine: the events of the others are still measured
        print(f"  {len(failed)} bookings failed, e.g. {failed[0]!r}", flush=True)
    async with db.read() as conn:
        created = {
            str(row["id"]): row["created_at"].timestamp()
            for row in await conn.fetch(
                "SELECT id, created_at FROM webhook_event WHERE state <> 'delivered' "
                "OR delivered_at > clock_timestamp() - interval '10 minutes'"
            )
        }
    deadline = time.monotonic() + 30
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline:
        arrived = read_arrivals(arrivals)
        if len(set(created) & set(arrived)) >= len(created):
            break
        await asyncio.sleep(0.2)
    return total, len(created), sorted(arrived[i] - created[i] for i in created if i in arrived)


async def measure(bench_db: benchkit.Database, args: Any) -> dict[str, Any]:
    """(1) and (2) on `bench_db` (migrated): its own organization, receiver and server process.
    The figures of both, as `make bench` reports them."""
    from booking.service.catalog import load_catalog
    from booking.settings import Settings
    from booking.store.db import Database

    receiver_port = benchkit.free_port()
    arrivals = Path(tempfile.mkstemp(prefix="webhook-arrivals-")[1])
    receiver = start_receiver(receiver_port, arrivals)
    server = None
    db = None
    try:
        world = await seed_hooked(bench_db, f"http://127.0.0.1:{receiver_port}")
        # Room for the bookings of (2) that a slow spell of the machine piles up.
        settings = Settings(
            database_tenant_share=1.0, database_pool_size=20, database_pool_timeout_s=30.0
        )
        db = await Database.open(settings, bench_db.url)
        async with db.read() as conn:
            catalog = await load_catalog(conn, world.organization_id)
        on, off = Slots(world, range(5)), Slots(world, range(5, 10))
        cpu = await cpu_rounds(db, catalog, world, on, off, args)
        async with db.read() as conn:
            await conn.execute("UPDATE webhook_event SET state = 'delivered'")  # not part of (2)
        server = start_deliverer(bench_db)
        total, written, delays = await delivery_delays(db, catalog, world, on, args, arrivals)
    finally:
        if server is not None:
            server.stop()
        if db is not None:
            await db.close()
        receiver.terminate()
        receiver.wait(timeout=10)
        remove(arrivals)
    on_ms, off_ms = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    return {
        "cpu": {
            "bookings_per_round": args.bookings,
            "rounds": args.rounds,
            "hook_off_ms": round(off_ms, 3),
            "hook_on_ms": round(on_ms, 3),
            "event_ms": round(on_ms - off_ms, 3),
            "share_of_service_call": round(on_ms / off_ms - 1, 3),
            "rounds_ms": {name: [round(v, 3) for v in values] for name, values in cpu.items()},
        },
        "delivery": {
            "rate_per_s": args.rate,
            "bookings": total,
            "events": written,
            "delivered": len(delays),
            "p50_ms": round(benchkit.percentile(delays, 50) * 1000, 1) if delays else None,
            "p99_ms": round(benchkit.percentile(delays, 99) * 1000, 1) if delays else None,
            "max_ms": round(delays[-1] * 1000, 1) if delays else None,
        },
    }


async def webhooks_phase(bench_db: benchkit.Database) -> dict[str, Any]:
    """The phase of `make bench`: `measure` with this script's defaults."""
    args = parse_args([])
    started = time.perf_counter()
    figures = await measure(bench_db, args)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    for line in describe(figures):
        print("  " + line, flush=True)
    print(f"  ({figures['seconds']} s)", flush=True)
    return figures


def describe(figures: dict[str, Any]) -> list[str]:
    cpu, delivery = figures["cpu"], figures["delivery"]
    return [
        f"(1) CPU per booking, median of {cpu['rounds']} rounds of {cpu['bookings_per_round']}: "
        f"hook off {cpu['hook_off_ms']:.3f} ms, hook on {cpu['hook_on_ms']:.3f} ms "
        f"({cpu['share_of_service_call'] * 100:+.1f} % of the service call)",
        f"(2) {delivery['delivered']} of {delivery['events']} events "
        f"({delivery['bookings']} bookings) at "
        f"{delivery['rate_per_s']:.0f}/s, commit to receiver: p50 {delivery['p50_ms']} ms, "
        f"p99 {delivery['p99_ms']} ms, max {delivery['max_ms']} ms",
    ]


async def main() -> int:
    args = parse_args()
    bench_db = benchkit.Database.start("booking_webhooks", os.environ.get("BENCH_DATABASE_URL"))
    try:
        benchkit.migrate(bench_db)
        for line in describe(await measure(bench_db, args)):
            print(line, flush=True)
    finally:
        bench_db.stop()
    return 0


if __name__ == "__main__":
    import uvloop

    raise SystemExit(uvloop.run(main()))
