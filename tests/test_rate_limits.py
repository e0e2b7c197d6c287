"""Rate limits: per registered application once authenticated, per client address for the rest
(unauthenticated routes, failed authentications); 429 with Retry-After, and the RateLimit-Policy
and RateLimit fields (draft-ietf-httpapi-ratelimit-headers) on every answer to a limited
request. In memory by default; shared through a real redis-server when a storage URL is given."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.app import create_app
from booking.api.ratelimit import COUNTER_SWEEP_INTERVAL_S, ProcessCounters
from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import FakeClock, bearer

AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]

# "name";r=<remaining>;t=<seconds>
RATELIMIT_ITEM = re.compile(r'^"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@pytest.fixture
def make_app(
    settings: Settings, database_url: str, clock: FakeClock, engine: AsyncEngine
) -> AppFactory:
    """A fresh app (its own limiter) whose settings differ from the test defaults as given."""

    @asynccontextmanager
    async def make(**overrides: object) -> AsyncIterator[FastAPI]:
        app = create_app(settings.model_copy(update=overrides), database_url, clock=clock)
        async with app.router.lifespan_context(app):
            yield app

    return make


def client_of(app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
    """A client calling from `address`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def remaining(response: httpx.Response) -> int:
    match = RATELIMIT_ITEM.match(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match["r"])


async def test_an_application_over_its_limit_gets_429_with_retry_after_and_ratelimit_fields(
    make_app: AppFactory, world: World, settings: Settings
) -> None:
    auth = bearer(settings, world.client_id)
    path = f"/{world.application_id}/services"
    async with make_app(rate_limit_application="3/minute") as app, client_of(app) as client:
        answers = [await client.get(path, headers=auth) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == '"application-60s";q=3;w=60'
    assert [remaining(a) for a in answers] == [2, 1, 0, 0]
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    reset_s = int(RATELIMIT_ITEM.match(refused.headers["ratelimit"])["t"])  # type: ignore[index]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["retry-after"]) >= reset_s  # never earlier than the reset
    assert "retry-after" not in answers[0].headers


async def test_several_limits_are_each_announced_and_each_enforced(
    make_app: AppFactory, world: World, settings: Settings
) -> None:
    auth = bearer(settings, world.client_id)
    path = f"/{world.application_id}/services"
    async with (
        make_app(rate_limit_application="5/second;2/minute") as app,
        client_of(app) as client,
    ):
        answers = [await client.get(path, headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == (
        '"application-1s";q=5;w=1, "application-60s";q=2;w=60'
    )
    assert re.fullmatch(
        r'"application-1s";r=4;t=\d+, "application-60s";r=1;t=\d+', answers[0].headers["ratelimit"]
    )


async def test_a_stranger_cannot_spend_another_applications_quota(
    make_app: AppFactory, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    """The stranger writes the victim's application id in the path, with a garbage token and
    with a valid token of its own application: it is charged to its address, never to the
    victim's application."""
    async with engine.begin() as conn:
        _, stranger_client_id = await builders.application(conn, world.organization_id)
    victim_path = f"/{world.application_id}/services"
    victim = bearer(settings, world.client_id)
    limits = {"rate_limit_application": "3/minute", "rate_limit_client_address": "4/minute"}
    garbage = {"Authorization": "Bearer garbage"}
    own_token = bearer(settings, stranger_client_id)
    async with make_app(**limits) as app:
        async with client_of(app, "198.51.100.9") as stranger:
            attempts = []
            for _ in range(3):
                attempts.append(await stranger.get(victim_path, headers=garbage))
                attempts.append(await stranger.get(victim_path, headers=own_token))
        async with client_of(app, "192.0.2.1") as partner:
            answers = [await partner.get(victim_path, headers=victim) for _ in range(3)]
    assert [a.status_code for a in attempts] == [401, 404, 401, 404, 429, 429]
    assert attempts[-1].headers["ratelimit-policy"] == '"client-address-60s";q=4;w=60'
    # The victim, from another address, still has its whole quota.
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert remaining(answers[0]) == 2


async def test_unauthenticated_routes_are_limited_per_client_address(
    make_app: AppFactory,
) -> None:
    async with make_app(rate_limit_client_address="2/minute") as app:
        async with client_of(app, "198.51.100.1") as one:
            first = [(await one.get("/healthz")).status_code for _ in range(3)]
            unknown = await one.get("/no-such-route")
        async with client_of(app, "198.51.100.2") as other:
            other_address = (await other.get("/healthz")).status_code
    assert first == [200, 200, 429]
    assert unknown.status_code == 429
    assert unknown.headers["retry-after"]
    assert other_address == 200


async def test_an_empty_limit_means_no_limit_and_no_ratelimit_fields(
    make_app: AppFactory, world: World, settings: Settings
) -> None:
    auth = bearer(settings, world.client_id)
    unlimited = {"rate_limit_application": "", "rate_limit_client_address": ""}
    async with make_app(**unlimited) as app, client_of(app) as client:
        answers = [await client.get(f"/{world.application_id}/services", headers=auth)]
        answers += [await client.get("/healthz") for _ in range(30)]
    assert {a.status_code for a in answers} == {200}
    assert all("ratelimit" not in a.headers for a in answers)


def test_a_limit_in_an_unknown_notation_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="rate_limit_application"):
        Settings(rate_limit_application="lots per day")
    with pytest.raises(ValidationError, match="redis"):
        Settings(rate_limit_storage_url="memcached://localhost")


# --- the process's own counters -----------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_counter_counts_within_its_window_and_starts_over_after_it() -> None:
    clock = ManualClock()
    counters = ProcessCounters(clock)
    limiter = FixedWindowRateLimiter(counters)
    item = parse("3/second")
    assert [limiter.hit(item, "application", "a") for _ in range(4)] == [True, True, True, False]
    stats = limiter.get_window_stats(item, "application", "a")
    assert (stats.remaining, stats.reset_time) == (0, clock.now + 1)
    clock.now += 1.0  # the window has ended
    assert limiter.get_window_stats(item, "application", "a") == (clock.now, 3)
    assert limiter.hit(item, "application", "a")
    assert limiter.get_window_stats(item, "application", "a").remaining == 2


def test_counters_of_ended_windows_are_swept_and_live_ones_kept() -> None:
    clock = ManualClock()
    counters = ProcessCounters(clock)
    for address in range(1000):  # a flood from many addresses, never seen again
        counters.incr(f"client-address/{address}", 1)
    counters.incr("application/steady", 60)
    clock.now += COUNTER_SWEEP_INTERVAL_S - 0.5
    counters.incr("application/steady", 60)
    assert counters.counters == 1001  # not swept before the interval has passed
    clock.now += 1.0
    counters.incr("application/steady", 60)
    assert counters.counters == 1
    assert counters.get("application/steady") == 3


def test_counting_starts_no_thread() -> None:
    """limits' MemoryStorage expires its counters from a timer thread, started again 10 ms after
    the last one ended: a new thread every few requests of a busy server."""
    counters = ProcessCounters()
    limiter = FixedWindowRateLimiter(counters)
    item = parse("1000000/second")
    threads = threading.active_count()
    for _ in range(200):
        limiter.hit(item, "application", "a")
        time.sleep(0.0001)
    assert threading.active_count() == threads


# --- shared by every process: a real redis-server ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on loopback, for this module only (.ci/run installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_with_a_storage_url_every_process_shares_one_quota(
    make_app: AppFactory, world: World, settings: Settings, redis_url: str
) -> None:
    """Two app instances (as two processes would) on one Redis: the quota is spent across both."""
    auth = bearer(settings, world.client_id)
    path = f"/{world.application_id}/services"
    shared = {"rate_limit_application": "3/minute", "rate_limit_storage_url": redis_url}
    async with (
        make_app(**shared) as one_app,
        make_app(**shared) as other_app,
        client_of(one_app) as first,
        client_of(other_app) as second,
    ):
        answers = [
            await first.get(path, headers=auth),
            await second.get(path, headers=auth),
            await first.get(path, headers=auth),
            await second.get(path, headers=auth),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [remaining(a) for a in answers] == [2, 1, 0, 0]


async def test_a_storage_that_does_not_answer_lets_requests_through(
    make_app: AppFactory, world: World, settings: Settings
) -> None:
    """A limiter outage must not become an API outage: no limit (and no fields) meanwhile."""
    auth = bearer(settings, world.client_id)
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    limits = {"rate_limit_application": "1/minute", "rate_limit_storage_url": dead}
    async with make_app(**limits) as app, client_of(app) as client:
        path = f"/{world.application_id}/services"
        answers = [await client.get(path, headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "ratelimit" not in answers[0].headers
