"""What the metrics cost per request, in microseconds of CPU, measured without the noise of a
whole booking: the request-metrics middleware around an app that answers at once (against that
app alone), and the database gate's three metrics (against a bare semaphore place). Compare
with a booking's CPU from `bench/inproc.py` (about 850 us on the 2-vCPU VM).

    .venv/bin/python bench/metrics_cost.py
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_cost.py  # WORKERS > 1
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from booking import metrics
from booking.api.metrics import BOOKING_ROUTE, MetricsMiddleware

ROUNDS = 50_000


class _Route:
    path = BOOKING_ROUTE


async def answer(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _Route  # what FastAPI's router sets
    await send({"type": "http.response.start", "status": 201, "headers": [(b"a", b"b")] * 4})
    await send({"type": "http.response.body", "body": b"{}"})


async def cpu_us(call: Callable[[], Awaitable[None]]) -> float:
    for _ in range(1000):
        await call()
    started = time.process_time()
    for _ in range(ROUNDS):
        await call()
    return (time.process_time() - started) / ROUNDS * 1e6


async def main() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    metered = MetricsMiddleware(answer, token=None)
    bare_us = await cpu_us(lambda: answer(dict(scope), receive, send))
    metered_us = await cpu_us(lambda: metered(dict(scope), receive, send))

    places = asyncio.Semaphore(10)

    async def place() -> None:
        await places.acquire()
        places.release()

    async def metered_place() -> None:
        with metrics.DB_CONNECTIONS_WAITING.track_inprogress(), metrics.DB_CONNECTION_WAIT.time():
            await places.acquire()
        with metrics.DB_CONNECTIONS_IN_USE.track_inprogress():
            places.release()

    place_us = await cpu_us(place)
    metered_place_us = await cpu_us(metered_place)
    mode = "multiprocess" if os.environ.get(metrics.MULTIPROC_ENV) else "one process"
    print(f"metrics ({mode}), CPU per request:")
    print(f"  middleware: {metered_us - bare_us:.1f} us ({metered_us:.1f} vs {bare_us:.1f})")
    print(
        f"  database gate, per connection taken: {metered_place_us - place_us:.1f} us "
        f"({metered_place_us:.1f} vs {place_us:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
