"""Delivering the outbox: at least once, in order per case, shared by every server process.

Each process runs one `Deliverer` (its lifespan starts it). It LISTENs on its own connection
for the NOTIFY that each event's COMMIT sends, and also polls every WEBHOOK_POLL_INTERVAL_S
(a NOTIFY is lost while that connection is down). Each round claims due events with a lease
(`outbox.claim`: SKIP LOCKED, so two processes never claim one event at once) and sends each
one as an HTTP POST to `{baseUrl}/service/actions/{hook}`:

- 2xx: delivered. Redirects are not followed (a 3xx is a failure like any other).
- 410 Gone: the endpoint is stopped (`gone_at`, a warning in the log, the `gone` outcome in
  the metrics, the event listed as undelivered) until an operator redelivers.
- Anything else, a timeout (WEBHOOK_TIMEOUT_S per attempt) or a refused address (the receiver's
  host is resolved and checked once per connection, and connected to at the checked address
  only: `addresses.client`): retried after
  the next of WEBHOOK_RETRY_DELAYS_S (Standard Webhooks' schedule, 10 % jitter), or after the
  receiver's Retry-After on 429 and 503 when that is longer. After the last, the event is
  failed (a warning, a metric, listed as undelivered): never dropped silently.

A process killed mid-delivery leaves its events leased: once the lease has passed, any
process sends them again, with the same `webhook-id` (receivers drop what they have seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson

from booking import metrics
from booking.service.webhooks import addresses, signing
from booking.settings import Settings
from booking.store import outbox
from booking.store.db import Database, DatabaseUnavailable, to_driver_dsn

log = logging.getLogger("booking.webhooks")

JITTER = 0.1
MAX_RETRY_AFTER_S = 24 * 3600.0


def hook_url(base_url: str, hook: str) -> str:
    return f"{base_url.rstrip('/')}/service/actions/{hook}"


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date), at most a day; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def next_delay_s(
    delays: list[float],
    failed_attempts: int,
    retry_after: float | None,
    jitter: Callable[[], float] = lambda: random.uniform(1 - JITTER, 1 + JITTER),  # noqa: S311
) -> float | None:
    """The wait before the next attempt after `failed_attempts` failures in a row, or None
    when the schedule is over."""
    if failed_attempts > len(delays):
        return None
    delay = delays[failed_attempts - 1] * jitter()
    return max(delay, retry_after) if retry_after is not None else delay


class Deliverer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        database_url: str,
        resolver: addresses.Resolver = addresses.resolve,
    ) -> None:
        self.db = db
        self.settings = settings
        self.dsn = to_driver_dsn(database_url)
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], uuid.UUID] = {}  # the event each one sends
        self._client = addresses.client(
            addresses.networks(settings.webhook_allowed_networks),
            settings.webhook_timeout_s,
            resolver=resolver,
        )

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.webhook_poll_interval_s):
                        await self._wake.wait()
                self._wake.clear()
                await self._round()
        finally:
            listener.cancel()
            unfinished = list(self._in_flight.values())
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(listener, *self._in_flight, return_exceptions=True)
            await self._client.aclose()
            await self._release(unfinished)

    async def _release(self, event_ids: list[uuid.UUID]) -> None:
        """Give back the leases of the events cut off by the stop (graceful shutdown)."""
        if not event_ids:
            return
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                async with self.db.read() as conn:
                    await outbox.release(conn, event_ids)
        except (TimeoutError, DatabaseUnavailable, asyncpg.PostgresError) as error:
            log.warning("webhook leases not released at stop: %s", type(error).__name__)

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own (not the pool's), reopened when it breaks."""
        while True:
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=self.settings.database_connect_timeout_s
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.warning("webhook listener cannot connect: %s", type(error).__name__)
                await asyncio.sleep(self.settings.webhook_poll_interval_s)
                continue
            try:
                await conn.add_listener(outbox.NOTIFY_CHANNEL, lambda *_: self.wake())
                self.wake()  # what was committed while it was not listening
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _, closed=closed: closed.set())
                await closed.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _round(self) -> None:
        """Claim as many due events as there are free places, send each in its own task."""
        free = self.settings.webhook_concurrency - len(self._in_flight)
        if free <= 0:
            return
        try:
            async with self.db.read() as conn:
                claimed = await outbox.claim(conn, free, self.settings.webhook_lease_s)
                depth, age = await outbox.queue(conn)
        except (DatabaseUnavailable, asyncpg.PostgresError) as error:
            log.warning("webhook claim failed: %s", type(error).__name__)
            return
        metrics.WEBHOOK_QUEUE_DEPTH.set(depth)
        metrics.WEBHOOK_QUEUE_OLDEST_AGE.set(age)
        for event in claimed:
            task = asyncio.create_task(self._deliver(event))
            self._in_flight[task] = event.id
            task.add_done_callback(self._done)
        if len(claimed) == free:  # there may be more
            self.wake()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery crashed", exc_info=task.exception())
        self.wake()  # a place is free, and the case's next event may be due

    async def _deliver(self, event: outbox.Claimed) -> None:
        url = hook_url(event.base_url, event.hook)
        body = orjson.dumps(event.payload)
        at = datetime.now(UTC)
        headers = {"Content-Type": "application/json"} | signing.headers(
            str(event.id), body, event.secrets, event.authorization_scheme, at
        )
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.perf_counter()
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                status = answer.status_code
                await self._read_some(answer)
                if status in (429, 503):
                    retry_after = retry_after_s(answer.headers.get("Retry-After"), at)
        except addresses.AddressRefused as refused:
            error = str(refused)
        except httpx.HTTPError as failure:
            error = type(failure).__name__
        latency = time.perf_counter() - started
        metrics.WEBHOOK_ATTEMPT_DURATION.observe(latency)
        if status is not None and error is None and not 200 <= status < 300:
            error = f"HTTP {status}"
        await self._record(event, at, status, latency, error, retry_after)

    async def _read_some(self, answer: httpx.Response) -> None:
        """Read at most WEBHOOK_MAX_RESPONSE_BYTES of the answer's body (it is not used)."""
        read = 0
        async for chunk in answer.aiter_raw():
            read += len(chunk)
            if read >= self.settings.webhook_max_response_bytes:
                break

    async def _record(
        self,
        event: outbox.Claimed,
        at: datetime,
        status: int | None,
        latency: float,
        error: str | None,
        retry_after: float | None,
    ) -> None:
        gone = status == 410
        next_at: datetime | None = None
        if error is None:
            state, outcome = "delivered", "delivered"
        elif gone:
            state, outcome, next_at = "pending", "gone", at
            log.warning(
                "webhook endpoint answered 410 Gone: stopped until redelivered",
                extra={"organization_id": str(event.organization_id), "hook": event.hook},
            )
        else:
            delay = next_delay_s(
                self.settings.webhook_retry_delays_s, event.attempts + 1, retry_after
            )
            if delay is None:
                state, outcome = "failed", "failed"
                log.warning(
                    "webhook event failed after every retry: %s",
                    error,
                    extra={"event_id": str(event.id), "hook": event.hook},
                )
            else:
                state, outcome = "pending", "retry"
                next_at = at + timedelta(seconds=delay)
        metrics.WEBHOOK_ATTEMPTS.labels(event.hook, outcome).inc()
        attempt = outbox.Attempt(event.id, at, status, latency * 1000, error, next_at, state)
        try:
            async with self.db.transaction() as conn:
                await outbox.record_attempt(conn, attempt)
                if gone:
                    await outbox.mark_gone(conn, event.organization_id, at)
        except (DatabaseUnavailable, asyncpg.PostgresError) as failure:
            # The lease runs out and the event is sent again: at least once.
            log.warning("webhook attempt not recorded: %s", type(failure).__name__)
