"""What outbound webhooks cost: (1) the CPU a booking spends on writing its afterBookAppointment
event (bookings of services with the hook on against services without it, in this process,
alternated rounds, no HTTP); (2) the delay from the event's commit to its arrival at a real
receiver at a steady 200 events/s, delivered by a real server process.

    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --rate 200 --seconds 10 --bookings 2000

Uses the embedded PostgreSQL (database `booking_webhooks`, recreated) or BENCH_DATABASE_URL.
The receiver is a separate process (an HTTP server of the standard library) that writes the
arrival time of each call; the delay is arrival minus the event's `created_at` (taken in its
transaction just before COMMIT), both from this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=2000, help="per round of (1)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of (1)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second in (2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of (2)")
    return parser.parse_args()


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

    commands = [slots.next() for _ in range(args.bookings)]
    queue = iter(commands)
    now = datetime.now(UTC)

    async def worker() -> None:
        for command in queue:
            await appointments.book(db, catalog, world.application_id, command, now)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return (time.process_time() - started) / args.bookings * 1000


async def main() -> int:
    args = parse_args()
    from sqlalchemy.ext.asyncio import create_async_engine

    from booking.service.catalog import load_catalog
    from booking.settings import Settings
    from booking.store.db import Database
    from booking.store.loader import ConfigDocument, apply_config

    bench_db = benchkit.Database.start("booking_webhooks", os.environ.get("BENCH_DATABASE_URL"))
    receiver_port = benchkit.free_port()
    arrivals = Path(tempfile.mkstemp(prefix="webhook-arrivals-")[1])
    receiver = start_receiver(receiver_port, arrivals)
    server = None
    try:
        benchkit.migrate(bench_db)
        world, document = hooked_document(f"http://127.0.0.1:{receiver_port}")
        engine = create_async_engine(bench_db.url)
        async with engine.begin() as conn:
            await apply_config(conn, ConfigDocument.model_validate(document))
        await engine.dispose()
        db = await Database.open(Settings(database_tenant_share=1.0), bench_db.url)
        async with db.read() as conn:
            catalog = await load_catalog(conn, world.organization_id)

        # (1) CPU: hook on (services 0-4) against hook off (5-9), alternated.
        on, off = Slots(world, range(5)), Slots(world, range(5, 10))
        await cpu_round(db, catalog, world, on, args)  # warm-up of both
        await cpu_round(db, catalog, world, off, args)
        results: dict[str, list[float]] = {"on": [], "off": []}
        for n in range(args.rounds):
            order = [("on", on), ("off", off)] if n % 2 == 0 else [("off", off), ("on", on)]
            for name, slots in order:
                results[name].append(await cpu_round(db, catalog, world, slots, args))
        median_on = sorted(results["on"])[len(results["on"]) // 2]
        median_off = sorted(results["off"])[len(results["off"]) // 2]
        print(
            f"(1) CPU per booking, median of {args.rounds} rounds of {args.bookings}: "
            f"hook off {median_off:.3f} ms, hook on {median_on:.3f} ms "
            f"({(median_on / median_off - 1) * 100:+.1f} %)",
            flush=True,
        )
        async with db.read() as conn:
            await conn.execute("UPDATE webhook_event SET state = 'delivered'")  # not part of (2)

        # (2) commit to receiver at a steady rate, delivered by a real server process.
        server = benchkit.Server(
            "booking API",
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
        from booking.service import appointments

        total = int(args.rate * args.seconds)
        commands = [on.next() for _ in range(total)]
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
        await asyncio.gather(*tasks)
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
            if len(set(created) & set(arrived)) >= total:
                break
            await asyncio.sleep(0.2)
        delays = sorted(arrived[i] - created[i] for i in created if i in arrived)
        print(
            f"(2) {len(delays)} of {total} events at {args.rate:.0f}/s, commit to receiver: "
            f"p50 {benchkit.percentile(delays, 50) * 1000:.0f} ms, "
            f"p99 {benchkit.percentile(delays, 99) * 1000:.0f} ms, "
            f"max {delays[-1] * 1000:.0f} ms",
            flush=True,
        )
        await db.close()
    finally:
        if server is not None:
            server.stop()
        receiver.terminate()
        receiver.wait(timeout=10)
        remove(arrivals)
        bench_db.stop()
    return 0


if __name__ == "__main__":
    import uvloop

    raise SystemExit(uvloop.run(main()))
