"""`make soak`: mixed booking, vacancies and cancel traffic against 2 uvicorn workers for
--duration seconds (default 60), then checks the database. Exits 1 if any check fails.

Traffic (a fixed number of asyncio workers sharing one httpx client, 127.0.0.1 only): 50 % book a
random slot of the first --days dates (so calendars fill up and conflicts are real: 409s are
expected), 35 % GET vacancies, 15 % cancel a random appointment this run booked (one cancel in
ten repeats an earlier cancel: cancelling is idempotent).

Checks: zero 5xx and zero transport errors; only expected statuses (book 201/409, vacancies 200,
cancel 200); every caseId answered 201 is in the database, Cancelled when this run cancelled it
and Planned otherwise; no appointment that was never answered 201; no calendar over capacity at
any moment; ticket numbers unique and gapless per (service, date), counters equal to the
highest ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import benchkit
import httpx
from benchkit import Database, World

EXPECTED = {"book": {201, 409}, "vacancies": {200}, "cancel": {200}}
MAX_REQUESTS_PER_WORKER = 1_000_000  # a bound besides the deadline


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of traffic (60)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (2)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--days", type=int, default=1, help="dates booked, from tomorrow (1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    return parser.parse_args()


@dataclass
class Booked:
    path: str  # /{app}/calendars/{service}/{date}/{cu}/appointments
    cancelled: bool = False


@dataclass
class Traffic:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    booked: dict[str, Booked] = field(default_factory=dict)  # caseId -> where
    cancellable: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in EXPECTED})


class Load:
    def __init__(self, world: World, token: str, days: int, traffic: Traffic) -> None:
        self.world = world
        self.headers = {"Authorization": f"Bearer {token}"}
        self.dates = world.dates(days)
        self.traffic = traffic

    def calendar(self, rng: random.Random) -> tuple[str, uuid.UUID]:
        service_index, cu = rng.choice(self.world.places)
        service_id, type_id = self.world.services[service_index]
        path = f"/{self.world.application_id}/calendars/{service_id}/{rng.choice(self.dates)}/{cu}"
        return path, type_id

    async def send(self, kind: str, call: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response: httpx.Response = await call
        except httpx.HTTPError as error:
            self.traffic.transport_errors[f"{kind}: {type(error).__name__}"] += 1
            return None
        self.traffic.latencies_ms[kind].append((time.perf_counter() - started) * 1000)
        self.traffic.statuses[(kind, response.status_code)] += 1
        return response

    async def book(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        calendar, type_id = self.calendar(rng)
        path = calendar + "/appointments"
        body = {
            "serviceTypeId": str(type_id),
            "startTime": rng.choice(benchkit.STARTS),
            "channel": "FaceToFace",
            "contactPhoneNumber": "020 7946 0018",
            "contactEmail": "soak@example.com",
        }
        response = await self.send("book", client.post(path, json=body, headers=self.headers))
        if response is not None and response.status_code == 201:
            case_id = response.json()["caseId"]
            self.traffic.booked[case_id] = Booked(path)
            self.traffic.cancellable.append(case_id)

    async def vacancies(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        calendar, type_id = self.calendar(rng)
        path = f"{calendar}/vacancies?serviceTypeId={type_id}"
        await self.send("vacancies", client.get(path, headers=self.headers))

    async def cancel(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        traffic = self.traffic
        if traffic.cancelled and rng.random() < 0.1:
            case_id = rng.choice(traffic.cancelled)  # again: must answer 200 with the same body
        elif traffic.cancellable:
            index = rng.randrange(len(traffic.cancellable))
            traffic.cancellable[index] = traffic.cancellable[-1]
            case_id = traffic.cancellable.pop()
        else:
            await self.vacancies(client, rng)
            return
        booked = traffic.booked[case_id]
        path = f"{booked.path}/{case_id}"
        response = await self.send("cancel", client.delete(path, headers=self.headers))
        if response is not None and response.status_code == 200 and not booked.cancelled:
            booked.cancelled = True
            traffic.cancelled.append(case_id)

    async def worker(self, client: httpx.AsyncClient, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        for _ in range(MAX_REQUESTS_PER_WORKER):
            if time.monotonic() >= deadline:
                return
            draw = rng.random()
            if draw < 0.5:
                await self.book(client, rng)
            elif draw < 0.85:
                await self.vacancies(client, rng)
            else:
                await self.cancel(client, rng)


async def drive(base_url: str, load: Load, args: argparse.Namespace, seed: int) -> float:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        deadline = started + args.duration
        await asyncio.gather(
            *(load.worker(client, seed + i, deadline) for i in range(args.concurrency))
        )
    return time.monotonic() - started


async def check_database(db: Database, traffic: Traffic) -> dict[str, Any]:
    conn = await benchkit.connect(db)
    try:
        await benchkit.settle(conn)
        rows = {
            str(r["id"]): r["status"]
            for r in await conn.fetch("SELECT id, status FROM appointment")
        }
        invariants = await benchkit.verify(conn)
    finally:
        await conn.close()
    missing = [c for c in traffic.booked if c not in rows]
    wrong_status = [
        {"caseId": c, "status": rows[c], "cancelled_by_soak": b.cancelled}
        for c, b in traffic.booked.items()
        if c in rows and rows[c] != ("Cancelled" if b.cancelled else "Planned")
    ]
    unanswered = [c for c in rows if c not in traffic.booked]
    return {
        "appointments_in_db": len(rows),
        "missing_201_case_ids": missing[:20],
        "missing_count": len(missing),
        "wrong_status": wrong_status[:20],
        "wrong_status_count": len(wrong_status),
        "rows_never_answered_201": unanswered[:20],
        "rows_never_answered_201_count": len(unanswered),
        "invariants": invariants,
    }


def percentile(values: list[float], p: float) -> float | None:
    return round(benchkit.percentile(values, p), 2) if values else None


def main() -> int:
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    started_at = datetime.now(UTC)
    traffic = Traffic()
    db = Database.start("booking_soak", os.environ.get("BENCH_DATABASE_URL"))
    api = None
    try:
        benchkit.migrate(db)

        async def prepare() -> World:
            if os.environ.get("BENCH_DATABASE_URL"):
                conn = await benchkit.connect(db)
                try:
                    await benchkit.wipe(conn)
                finally:
                    await conn.close()
            return await benchkit.seed(db)

        world = asyncio.run(prepare())
        secret = benchkit.new_secret()
        token = benchkit.mint_token(secret, world.client_id)
        api = benchkit.start_api(db, secret, args.workers, pool_size=10)
        print(
            f"Soak: {args.duration} s, {args.concurrency} clients, {args.workers} uvicorn "
            f"workers on {api.base_url}, seed {seed} ...",
            flush=True,
        )
        load = Load(world, token, args.days, traffic)
        elapsed = asyncio.run(drive(api.base_url, load, args, seed))
        database = asyncio.run(check_database(db, traffic))
    finally:
        if api is not None:
            api.stop()
        db.stop()

    statuses = {f"{kind} {status}": n for (kind, status), n in sorted(traffic.statuses.items())}
    server_errors = sum(n for (_, status), n in traffic.statuses.items() if status >= 500)
    unexpected = {
        f"{kind} {status}": n
        for (kind, status), n in traffic.statuses.items()
        if status not in EXPECTED[kind]
    }
    checks = {
        "zero 5xx": server_errors == 0,
        "zero transport errors": not traffic.transport_errors,
        "only expected statuses": not unexpected,
        "every 201 caseId in the database": database["missing_count"] == 0,
        "statuses Cancelled/Planned as answered": database["wrong_status_count"] == 0,
        "no appointment without a 201": database["rows_never_answered_201_count"] == 0,
        "never over capacity, tickets gapless": database["invariants"]["ok"],
    }
    requests = sum(traffic.statuses.values())
    report: dict[str, Any] = {
        "started_at": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make soak SOAK_ARGS='" + " ".join(sys.argv[1:]) + "'",
        "seed": seed,
        "settings": vars(args),
        "elapsed_s": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "statuses": statuses,
        "transport_errors": dict(traffic.transport_errors),
        "latency_ms": {
            kind: {"p50": percentile(values, 50), "p99": percentile(values, 99)}
            for kind, values in traffic.latencies_ms.items()
        },
        "booked": len(traffic.booked),
        "cancelled": len(traffic.cancelled),
        "database": database,
        "checks": checks,
    }
    print(f"\n{requests} requests in {elapsed:.1f} s ({report['requests_per_s']} req/s)")
    for name, count in statuses.items():
        print(f"  {name:<16} {count}")
    for kind, latency in report["latency_ms"].items():
        print(f"  {kind:<16} p50 {latency['p50']} ms   p99 {latency['p99']} ms")
    if traffic.transport_errors:
        print(f"  transport errors: {dict(traffic.transport_errors)}")
    print(
        f"booked {len(traffic.booked)}, cancelled {len(traffic.cancelled)}, "
        f"{database['appointments_in_db']} appointments in the database"
    )
    print(benchkit.verdict_line(database["invariants"]))
    for name, ok in checks.items():
        print(f"check {name}: {'OK' if ok else 'FAILED'}")
    benchkit.RESULTS_DIR.mkdir(exist_ok=True)
    path = benchkit.RESULTS_DIR / f"soak-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(benchkit.ROOT)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
