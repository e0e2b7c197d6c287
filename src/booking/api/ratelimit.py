"""Rate limits, on the `limits` library: per registered application once it is authenticated
(never keyed by a path segment a stranger can write, so nobody can spend another tenant's
quota), and per client address for the rest (unauthenticated routes and failed
authentications).

Fixed windows: one counter per key and window, so a check is a few dictionary operations in
memory or three small Redis commands. (limits' moving window keeps one entry per request and, in
memory, sweeps every key through a worker thread: work a stranger's flood from many addresses
would multiply.) The counters live in this process (`ProcessCounters`) unless
RATE_LIMIT_STORAGE_URL names a Redis shared by every process.

Every answer to a limited request carries `RateLimit-Policy` and `RateLimit`
(draft-ietf-httpapi-ratelimit-headers, structured fields: `"application-1s";q=100;w=1` and
`"application-1s";r=57;t=1`); over a limit, 429 with `Retry-After`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from limits import RateLimitItem, WindowStats, storage
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from booking.api import problems
from booking.settings import parse_limits

log = logging.getLogger("booking.api")

# Where the API layer leaves the quota of a request for the middleware to put in the answer.
QUOTA_SCOPE_KEY = "booking.quota"
STORAGE_ERROR_LOG_INTERVAL_S = 10.0
# How often the process's counters are swept of those whose window has ended.
COUNTER_SWEEP_INTERVAL_S = 10.0
# A shared store that does not answer must not hold requests up: its calls give up this soon.
REDIS_TIMEOUT_S = 0.5

Scope = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class Quota:
    """What the limits of one key said about one request."""

    header_policy: bytes  # the RateLimit-Policy field value, the same on every answer
    header_state: bytes  # the RateLimit field value of this answer
    retry_after_s: int  # 0 when the request is within every limit

    @property
    def exceeded(self) -> bool:
        return self.retry_after_s > 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        fields = [(b"ratelimit-policy", self.header_policy), (b"ratelimit", self.header_state)]
        if self.exceeded:
            fields.append((b"retry-after", str(self.retry_after_s).encode()))
        return fields


class ProcessCounters(storage.Storage):
    """The fixed-window counters of this process, behind limits' storage interface: a dict used
    from the event loop's thread only, so without locks or threads. (limits' MemoryStorage
    expires counters from a timer thread that it starts again 10 ms after the last one ended:
    on a busy server, a new thread competing for the GIL every few requests.)

    A counter whose window has ended reads as 0 and starts a new window at its next hit. At most
    every COUNTER_SWEEP_INTERVAL_S, a hit first drops every such counter, so that keys never
    seen again (a flood from many client addresses) do not pile up."""

    STORAGE_SCHEME = None  # not reachable by a storage URL: RateLimits makes it

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (count, end of its window)
        self._next_sweep = clock() + COUNTER_SWEEP_INTERVAL_S

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError  # nothing here fails the way a store that does not answer fails

    @property
    def counters(self) -> int:
        """Counters held, their window ended or not."""
        return len(self._counters)

    def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """Add `amount` to `key`'s counter (a new window of `expiry` seconds when its last one
        has ended): the count, and the end of its window."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        count, window_end = self._counters.get(key, (0, now))
        if window_end <= now:
            count, window_end = 0, now + expiry
        count += amount
        self._counters[key] = (count, window_end)
        return count, window_end

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.count(key, expiry, amount)[0]

    def get(self, key: str) -> int:
        counter = self._counters.get(key)
        return counter[0] if counter is not None and counter[1] > self._clock() else 0

    def get_expiry(self, key: str) -> float:
        now = self._clock()
        counter = self._counters.get(key)
        return counter[1] if counter is not None and counter[1] > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        dropped = len(self._counters)
        self._counters.clear()
        return dropped

    def clear(self, key: str) -> None:
        self._counters.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._counters = {k: c for k, c in self._counters.items() if c[1] > now}
        self._next_sweep = now + COUNTER_SWEEP_INTERVAL_S


class RateLimitExceeded(Exception):
    def __init__(self, quota: Quota, subject: str) -> None:
        super().__init__(subject)
        self.quota = quota
        self.subject = subject


class Limiter:
    """The limits of one kind of key (applications, or client addresses), counted in this
    process (`ProcessCounters`) or in a shared Redis (limits' fixed-window strategy)."""

    def __init__(
        self,
        name: str,
        items: Sequence[RateLimitItem],
        counters: ProcessCounters | RedisStorage,
    ) -> None:
        self.name = name
        self.items = list(items)
        self._local: ProcessCounters | None = None
        self._shared: FixedWindowRateLimiter | None = None
        if isinstance(counters, ProcessCounters):
            self._local = counters
        else:
            self._shared = FixedWindowRateLimiter(counters)
        self._policy_names = [f"{name}-{item.get_expiry()}s" for item in self.items]
        self._header_policy = ", ".join(
            f'"{policy}";q={item.amount};w={item.get_expiry()}'
            for policy, item in zip(self._policy_names, self.items, strict=True)
        ).encode()
        self._storage_failed_at = float("-inf")

    async def hit(self, key: str) -> Quota | None:
        """Count one request of `key` against every limit; None when there is no limit or the
        shared store does not answer (then the request goes through: a limiter outage must not
        become an API outage)."""
        if not self.items:
            return None
        states: list[str] = []
        retry_after = 0
        now = time.time()
        try:
            for policy, item in zip(self._policy_names, self.items, strict=True):
                if self._local is not None:
                    # limits' fixed window (FixedWindowRateLimiter.hit, then get_window_stats),
                    # with the counter's key made once instead of three times.
                    count, window_end = self._local.count(
                        item.key_for(self.name, key), item.get_expiry()
                    )
                    within = count <= item.amount
                    stats = WindowStats(window_end, max(0, item.amount - count))
                else:
                    assert self._shared is not None
                    within = await self._shared.hit(item, self.name, key)
                    stats = await self._shared.get_window_stats(item, self.name, key)
                reset_s = max(0, math.ceil(stats.reset_time - now))
                states.append(f'"{policy}";r={stats.remaining};t={reset_s}')
                if not within:
                    retry_after = max(retry_after, reset_s, 1)
        except StorageError as error:
            if now - self._storage_failed_at >= STORAGE_ERROR_LOG_INTERVAL_S:
                self._storage_failed_at = now
                log.warning(
                    "rate limit storage unavailable: %s", type(error.storage_error).__name__
                )
            return None
        return Quota(self._header_policy, ", ".join(states).encode(), retry_after)


class RateLimits:
    """The process's two limiters (RATE_LIMIT_APPLICATION, RATE_LIMIT_CLIENT_ADDRESS)."""

    def __init__(self, application: str, client_address: str, storage_url: str | None) -> None:
        counters: ProcessCounters | RedisStorage
        self._redis: ConnectionPool | None = None
        if storage_url:
            url = storage_url.removeprefix("async+")
            self._redis = ConnectionPool.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            counters = RedisStorage(
                "async+" + url,
                implementation="redispy",
                wrap_exceptions=True,
                # A documented option (typed as scalars only): the pool is ours to close.
                connection_pool=self._redis,  # type: ignore[arg-type]
            )
        else:
            counters = ProcessCounters()
        self.application = Limiter("application", parse_limits(application), counters)
        self.client_address = Limiter("client-address", parse_limits(client_address), counters)

    async def charge_application(self, scope: Scope, application_id: str) -> None:
        """An authenticated request, counted against its application: RateLimitExceeded (429)
        past the limit."""
        await _charge(self.application, scope, application_id, "this application")

    async def charge_client_address(self, scope: Scope) -> None:
        """An unauthenticated request, or a failed authentication, counted against the client's
        address (the proxy's own, unless FORWARDED_ALLOW_IPS trusts it to name the client):
        RateLimitExceeded (429) past the limit."""
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        await _charge(self.client_address, scope, address, "this client address")

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


async def _charge(limiter: Limiter, scope: Scope, key: str, subject: str) -> None:
    quota = await limiter.hit(key)
    if quota is not None:
        scope[QUOTA_SCOPE_KEY] = quota  # the middleware puts it in the answer's fields
        if quota.exceeded:
            raise RateLimitExceeded(quota, subject)


def too_many_requests(quota: Quota, subject: str) -> Response:
    """The 429 problem; the middleware adds RateLimit-Policy, RateLimit and Retry-After."""
    return problems.problem(
        429,
        "rate_limited",
        "Too many requests",
        f"The rate limit of {subject} is exhausted; retry after {quota.retry_after_s} s.",
    )


def openapi_response(problem_schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI description of a 429, with its fields."""
    text = {"type": "string"}
    return {
        "description": "A rate limit is exhausted: retry after `Retry-After` seconds.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
            "RateLimit-Policy": {
                "description": 'The quota policies, e.g. `"application-1s";q=100;w=1` '
                "(draft-ietf-httpapi-ratelimit-headers). Also on every other answer to a "
                "limited request.",
                "schema": text,
            },
            "RateLimit": {
                "description": 'What remains of each, e.g. `"application-1s";r=0;t=1`.',
                "schema": text,
            },
        },
        "content": {problems.PROBLEM_MEDIA_TYPE: {"schema": problem_schema}},
    }


async def _on_rate_limit_exceeded(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimitExceeded)
    return too_many_requests(exc.quota, exc.subject)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RateLimitExceeded, _on_rate_limit_exceeded)
