"""Find a customer record by key field (POST /customers/query, queryType KeyField) with 1,000
and then 1,000,000 records: the server's own time (Server-Timing) per request, the ratio between
the two (target: flat), and EXPLAIN (ANALYZE, BUFFERS) of the statement at 1,000,000 (target:
an index lookup, no scan).

`customer_query_phase` is the phase the bench runner calls; `python bench/customers.py` runs it
alone (embedded PostgreSQL or BENCH_DATABASE_URL, one API worker) and prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import benchkit
import httpx
import orjson
from benchkit import Database, Server, World
from explain import explain

CUSTOMERS_MANAGER = "Customers Manager"
KEY_SLUG = "national-id"
TARGET_SERVER_MS = 2.0
BATCH = 50_000


def key_value(n: int) -> str:
    return f"NID-{n:08d}"


async def add_customers_table(conn: asyncpg.Connection, world: World) -> uuid.UUID:
    """A key field for the bench organization, and the Customers Manager role for its
    application."""
    field_type_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO customer_field_type (id, organization_id, name, slug, kind, is_key, position)"
        " VALUES ($1, $2, 'National id', $3, 'text', true, 0)",
        field_type_id,
        world.organization_id,
        KEY_SLUG,
    )
    await conn.execute(
        "UPDATE registered_application SET roles = array_append(roles, $2) WHERE id = $1",
        world.application_id,
        CUSTOMERS_MANAGER,
    )
    return field_type_id


async def add_records(
    conn: asyncpg.Connection, world: World, field_type_id: uuid.UUID, first: int, last: int
) -> None:
    """Records `first` .. `last - 1`, each with its key row, by COPY in batches. The digest is
    the app's own function, so the API finds them."""
    from booking.service.customer_rules import value_digest

    now = datetime.now(UTC)
    key = str(field_type_id)
    for start in range(first, last, BATCH):
        numbers = range(start, min(start + BATCH, last))
        ids = [uuid.uuid4() for _ in numbers]
        values = [key_value(n) for n in numbers]
        await conn.copy_records_to_table(
            "customer_record",
            columns=[
                "id",
                "organization_id",
                "display_name",
                "fields",
                "date_created",
                "date_updated",
            ],
            records=[
                (
                    i,
                    world.organization_id,
                    f"Customer {v}",
                    orjson.dumps({key: v}).decode(),
                    now,
                    now,
                )
                for i, v in zip(ids, values, strict=True)
            ],
        )
        await conn.copy_records_to_table(
            "customer_key",
            columns=["field_type_id", "value_digest", "record_id"],
            records=[(field_type_id, value_digest(v), i) for i, v in zip(ids, values, strict=True)],
        )


async def query_timing(
    server: Server, world: World, token: str, records: int, requests: int
) -> dict[str, Any]:
    """Sequential queries for random existing key values; the server's own time of each."""
    path = f"/{world.application_id}/customers/query"
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(records)
    server_ms: list[float] = []
    client_ms: list[float] = []
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:

        async def query(n: int) -> httpx.Response:
            body = {"queryType": "KeyField", "fieldSlug": KEY_SLUG, "fieldValue": key_value(n)}
            return await client.post(path, json=body)

        deadline = time.monotonic() + 30  # the API sees the new field type within its cache TTL
        while (await query(0)).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the API never found the bench customer records")
            await asyncio.sleep(0.5)
        for _ in range(20):  # warm-up: the pools, the prepared statement
            await query(rng.randrange(records))
        for _ in range(requests):
            started = time.perf_counter()
            response = await query(rng.randrange(records))
            client_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"query answered {response.status_code}: {response.text}")
            timing = response.headers.get("server-timing", "")
            server_ms.append(float(timing.split("dur=")[1].split(",")[0]))
    return {
        "records": records,
        "requests": requests,
        "server_median_ms": round(benchkit.percentile(server_ms, 50), 3),
        "server_p99_ms": round(benchkit.percentile(server_ms, 99), 3),
        "client_median_ms": round(benchkit.percentile(client_ms, 50), 3),
    }


async def customer_query_phase(
    db: Database, api: Server, world: World, secret: str, rows: int, requests: int
) -> dict[str, Any]:
    from booking.api.auth import mint_dev_token
    from booking.service.customer_rules import value_digest
    from booking.settings import Settings
    from booking.store.customers import _BY_KEY

    settings = Settings(jwt_mode="dev", jwt_dev_secret=secret)
    token = mint_dev_token(settings, world.client_id, [CUSTOMERS_MANAGER], ttl_s=3600)
    conn = await benchkit.connect(db)
    try:
        field_type_id = await add_customers_table(conn, world)
        small = min(1_000, rows)
        await add_records(conn, world, field_type_id, 0, small)
        await conn.execute("ANALYZE customer_record; ANALYZE customer_key")
        at_small = await query_timing(api, world, token, small, requests)
        print(
            f"{'customer query, 1k records':<28} server median {at_small['server_median_ms']} ms"
            f"   p99 {at_small['server_p99_ms']} ms",
            flush=True,
        )
        started = time.monotonic()
        await add_records(conn, world, field_type_id, small, rows)
        for table in ("customer_record", "customer_key"):  # one statement each: no transaction
            await conn.execute(f"VACUUM ANALYZE {table}")
        grown_s = round(time.monotonic() - started, 1)
        at_rows = await query_timing(api, world, token, rows, requests)
        print(
            f"{f'customer query, {rows:,} records':<28} server median "
            f"{at_rows['server_median_ms']} ms   p99 {at_rows['server_p99_ms']} ms"
            f"   (grown in {grown_s} s)",
            flush=True,
        )
        plan = await explain(
            conn,
            _BY_KEY,
            (field_type_id, value_digest(key_value(rows // 2)), world.organization_id),
        )
    finally:
        await conn.close()
    ratio = at_rows["server_median_ms"] / at_small["server_median_ms"]
    return {
        "small": at_small,
        "grown": at_rows,
        "median_ratio": round(ratio, 2),
        "target_server_ms": TARGET_SERVER_MS,
        "ok": at_rows["server_median_ms"] <= TARGET_SERVER_MS and "Seq Scan" not in plan["plan"],
        "explain": plan,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="records at the end")
    parser.add_argument("--requests", type=int, default=500, help="sequential queries per size")
    args = parser.parse_args()
    db = Database.start("booking_bench_customers", os.environ.get("BENCH_DATABASE_URL"))
    api: Server | None = None
    try:
        benchkit.migrate(db)
        conn = await benchkit.connect(db)
        try:
            await benchkit.wipe(conn)
        finally:
            await conn.close()
        world = await benchkit.seed(db)
        secret = benchkit.new_secret()
        api = benchkit.start_api(db, secret, workers=1, pool_size=10)
        result = await customer_query_phase(db, api, world, secret, args.rows, args.requests)
        print(json.dumps({k: v for k, v in result.items() if k != "explain"}, indent=2))
        print(result["explain"]["plan"])
        return 0 if result["ok"] else 1
    finally:
        if api is not None:
            api.stop()
        db.stop()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
