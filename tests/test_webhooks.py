"""Outbound webhooks, end to end on a real receiver: the events come from the outbox written
in the booking's own transaction, every delivery is signed (checked by the receiver with the
`standardwebhooks` library and with the original's HMAC written from its documentation),
retried until it arrives, in order per case, never sent twice at once by two deliverers; and
with real server processes, one killed by SIGKILL mid-delivery and two sharing the work."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.domain import AppointmentStatus, CalendarDay, Channel, CheckInMode
from booking.service import appointments
from booking.service.catalog import Catalog, load_catalog
from booking.service.commands import (
    BookAppointment,
    CancelAppointment,
    CheckIn,
    RescheduleAppointment,
)
from booking.service.errors import Conflict
from booking.service.webhooks import addresses
from booking.service.webhooks.before import BeforeHooks
from booking.service.webhooks.delivery import Deliverer, next_delay_s, retry_after_s
from booking.settings import Settings
from booking.store import outbox
from booking.store.db import Database
from tests import builders
from tests.conftest import TODAY, FakeClock, bearer
from tests.kit import CountingDatabase, assert_problem, book, check_in, eventually
from tests.receiver import Receiver, free_port, running
from tests.serving import serve

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
# Bookable days: 16 non-overlapping half hours a day (08-12, 13-17).
STARTS = [*range(480, 720, 30), *range(780, 1020, 30)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running(Receiver(SECRET, free_port())) as started:
        yield started


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Deliveries to 127.0.0.1 allowed, retries within a second, a short lease."""
    return settings.model_copy(
        update={
            "webhook_allowed_networks": ["127.0.0.1/32"],
            "webhook_retry_delays_s": [0.2] * 9,
            "webhook_poll_interval_s": 0.5,
            "webhook_timeout_s": 2.0,
            "webhook_lease_s": 3.0,
        }
    )


@pytest.fixture
async def hooked(engine: AsyncEngine, receiver: Receiver) -> builders.World:
    """An organization whose webhooks go to the receiver, both hooks on, HMAC as well."""
    config = builders.organization_config(
        service={"webhooks": ["afterBookAppointment", "afterCancelAppointment"]}
    ) | {"webhooks": {"baseUrl": receiver.url, "authorization": "HMAC", "secrets": [SECRET]}}
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return builders.world_of(config)


async def catalog_of(db: Database, world: builders.World) -> Catalog:
    async with db.read() as conn:
        catalog = await load_catalog(conn, world.organization_id)
    assert catalog is not None
    return catalog


@asynccontextmanager
async def delivering(
    settings: Settings,
    database_url: str,
    count: int = 1,
    resolver: addresses.Resolver = addresses.resolve,
) -> AsyncIterator[list[Deliverer]]:
    """`count` deliverers, each with its own pool: as many server processes would have."""
    databases = [await Database.open(settings, database_url) for _ in range(count)]
    deliverers = [Deliverer(db, settings, database_url, resolver) for db in databases]
    tasks = [asyncio.create_task(d.run()) for d in deliverers]
    try:
        yield deliverers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for db in databases:
            await db.close()


def booking(world: builders.World, n: int) -> BookAppointment:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    day = CalendarDay(world.service_id, 0, tomorrow + timedelta(days=n // len(STARTS)))
    return BookAppointment(
        day=day,
        service_type_id=world.service_type_id,
        start_minute=STARTS[n % len(STARTS)],
        channel=Channel.FACE_TO_FACE,
    )


async def book_many(db: Database, world: builders.World, count: int) -> list[Any]:
    catalog = await catalog_of(db, world)
    now = datetime.now(UTC)
    return [
        await appointments.book(db, catalog, world.application_id, booking(world, n), now)
        for n in range(count)
    ]


async def in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


# A deliverer records an attempt once the receiver has answered it (after the receiver has
# recorded the call), and a retry when its schedule and the next poll say so: what a test reads
# of the outbox, it waits for.


async def until_undelivered(db: Database, world: builders.World, state: str, count: int) -> None:
    """Until `count` of the organization's undelivered events are in `state`."""

    async def reached() -> bool:
        async with db.read() as conn:
            found = await outbox.undelivered(conn, world.organization_id, 1000)
        return len([e for e in found if e.state == state]) >= count

    await eventually(reached, f"{count} undelivered events {state}")


async def until_delivered(db: Database, count: int) -> None:
    """Until `count` events are recorded delivered (a process counts a delivery in its metrics
    before it records it)."""

    async def reached() -> bool:
        async with db.read() as conn:
            done = await conn.fetchval(
                "SELECT count(*) FROM webhook_event WHERE state = 'delivered'"
            )
        return bool(done >= count)

    await eventually(reached, f"{count} events delivered", 60)


async def test_a_thousand_bookings_give_a_thousand_signed_deliveries_in_order_per_case(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    async with delivering(fast, database_url):
        records = await book_many(db, hooked, 1000)
        catalog = await catalog_of(db, hooked)
        cancelled = records[:100]
        for record in cancelled:
            command = CancelAppointment(
                CalendarDay(record.service_id, record.cu_index, record.on_date), record.case_id
            )
            await appointments.cancel(db, catalog, command, datetime.now(UTC))
        calls = await in_thread(receiver.wait_for, 1100)

    assert len(calls) == 1100
    assert all(c.standard_signature_valid and c.original_hmac_valid for c in calls)
    booked = [c for c in calls if c.path == "/service/actions/afterBookAppointment"]
    assert {(c.body["caseId"], c.body["ticket"]["number"]) for c in booked} == {
        (str(r.case_id), r.ticket_number) for r in records
    }
    assert len({c.headers["webhook-id"] for c in calls}) == 1100
    for record in cancelled:
        of_case = [c.body for c in calls if c.body["caseId"] == str(record.case_id)]
        assert [(b["status"], b["eventSequence"]) for b in of_case] == [
            ("Planned", 1),
            ("Cancelled", 2),
        ]
    first = booked[0].body
    assert first["appointment"]["timeZoneId"] == "GMT Standard Time"
    assert first["ticket"]["prefix"] == "A"
    assert first["triggeredByUserId"] is None


async def test_the_receiver_down_for_a_while_then_up_gets_everything(
    db: Database, fast: Settings, database_url: str, engine: AsyncEngine
) -> None:
    port = free_port()
    config = builders.organization_config(service={"webhooks": ["afterBookAppointment"]}) | {
        "webhooks": {"baseUrl": f"http://127.0.0.1:{port}", "secrets": [SECRET]}
    }
    async with engine.begin() as conn:
        await builders.load(conn, config)
    world = builders.world_of(config)
    async with delivering(fast, database_url):
        records = await book_many(db, world, 20)
        await until_undelivered(db, world, "pending", 20)  # nothing listens: every attempt fails
        async with db.read() as conn:
            failing = await outbox.undelivered(conn, world.organization_id, 100)
        assert len(failing) == 20
        with running(Receiver(SECRET, port)) as receiver:
            calls = await in_thread(receiver.wait_for, 20)
    assert {c.body["caseId"] for c in calls} == {str(r.case_id) for r in records}
    assert all(c.standard_signature_valid and c.original_hmac_valid is None for c in calls)


async def test_two_deliverers_never_send_one_event_twice_at_once(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    receiver.delay_s = 0.05  # long enough for a second deliverer to try the same event
    async with delivering(fast, database_url, count=2):
        await book_many(db, hooked, 200)
        calls = await in_thread(receiver.wait_for, 200)
        await asyncio.sleep(0.5)
    assert receiver.overlapping == []
    assert len(calls) == 200 == len({c.headers["webhook-id"] for c in calls})


async def test_an_event_exists_only_if_its_booking_committed(
    db: Database, fast: Settings, hooked: builders.World, engine: AsyncEngine
) -> None:
    catalog = await catalog_of(db, hooked)
    now = datetime.now(UTC)
    await appointments.book(db, catalog, hooked.application_id, booking(hooked, 0), now)
    with pytest.raises(Conflict):
        await appointments.book(db, catalog, hooked.application_id, booking(hooked, 0), now)
    async with engine.connect() as conn:
        events = (await conn.execute(text("SELECT count(*) FROM webhook_event"))).scalar_one()
    assert events == 1


async def test_a_service_without_the_hook_writes_no_event(
    db: Database, world: builders.World, engine: AsyncEngine
) -> None:
    await book_many(db, world, 3)
    async with engine.connect() as conn:
        events = (await conn.execute(text("SELECT count(*) FROM webhook_event"))).scalar_one()
    assert events == 0


async def test_410_stops_the_endpoint_until_an_operator_redelivers(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    answers = iter([410])
    receiver.answer = lambda call: (next(answers, 204), {})
    async with delivering(fast, database_url):
        await book_many(db, hooked, 1)
        await in_thread(receiver.wait_for_calls, 1)
        await until_undelivered(db, hooked, "pending", 1)  # the 410 is recorded: stopped
        catalog = await catalog_of(db, hooked)
        for n in (1, 2):
            await appointments.book(
                db, catalog, hooked.application_id, booking(hooked, n), datetime.now(UTC)
            )
        await asyncio.sleep(1.5)
        assert len(receiver.calls) == 1  # it answered 410: nothing more was sent
        async with db.read() as conn:
            stopped = await outbox.undelivered(conn, hooked.organization_id, 10)
            assert [e.attempts for e in stopped] == [1]
            await outbox.redeliver(conn, [stopped[0].id], hooked.organization_id)
        calls = await in_thread(receiver.wait_for, 3)
    assert len(calls) == 3


async def test_an_event_that_fails_every_retry_is_failed_and_listed(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    receiver.answer = lambda call: (500, {})
    short = fast.model_copy(update={"webhook_retry_delays_s": [0.1, 0.1]})
    async with delivering(short, database_url):
        await book_many(db, hooked, 1)
        await until_undelivered(db, hooked, "failed", 1)
    async with db.read() as conn:
        (failed,) = await outbox.undelivered(conn, hooked.organization_id, 10)
        tries = await outbox.attempts(conn, failed.id)
    assert failed.state == "failed"
    assert failed.attempts == 3
    assert [t["status_code"] for t in tries] == [500, 500, 500]
    assert tries[-1]["next_attempt_at"] is None
    assert tries[0]["next_attempt_at"] is not None
    assert len(receiver.calls) == 3
    assert len({c.headers["webhook-id"] for c in receiver.calls}) == 1  # stable across retries


async def test_a_redirect_is_not_followed(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    receiver.answer = lambda call: (307, {"Location": "http://169.254.169.254/"})
    short = fast.model_copy(update={"webhook_retry_delays_s": [0.1]})
    async with delivering(short, database_url):
        await book_many(db, hooked, 1)
        await until_undelivered(db, hooked, "failed", 1)
    async with db.read() as conn:
        (failed,) = await outbox.undelivered(conn, hooked.organization_id, 10)
    assert failed.state == "failed"
    assert failed.last_error == "HTTP 307"


async def test_internal_addresses_are_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "169.254.169.254", "10.1.2.3", "localhost"):
        with pytest.raises(addresses.AddressRefused):
            await addresses.checked(host, 80, [])
    allowed = addresses.networks(["127.0.0.1/32"])
    assert await addresses.checked("127.0.0.1", 80, allowed) == [ip_address("127.0.0.1")]
    one_bad = DNS(["93.184.215.14", "10.0.0.7"])  # a public address does not excuse the other
    with pytest.raises(addresses.AddressRefused, match=r"10\.0\.0\.7"):
        await addresses.checked("hooks.example.com", 443, [], one_bad)


class DNS:
    """A resolver that answers `first` to the first question and `later` to every other, as a
    DNS server rebinding a name would; it counts the questions."""

    def __init__(self, first: list[str], later: list[str] | None = None) -> None:
        self.answers = [[ip_address(a) for a in first], [ip_address(a) for a in later or first]]
        self.questions: list[tuple[str, int]] = []
        self.hang = False

    async def __call__(self, host: str, port: int) -> list[addresses.Address]:
        self.questions.append((host, port))
        if self.hang:
            await asyncio.Event().wait()
        return self.answers[min(len(self.questions) - 1, 1)]


async def test_a_client_call_to_an_internal_address_is_refused_before_connecting() -> None:
    dns = DNS(["169.254.169.254"])
    async with addresses.client([], 2.0, resolver=dns) as client:
        with pytest.raises(addresses.AddressRefused, match=r"169\.254\.169\.254"):
            await client.post("http://metadata.example.com/latest", content=b"{}")
    assert dns.questions == [("metadata.example.com", 80)]


async def test_resolving_the_receiver_is_bounded_by_the_connect_timeout() -> None:
    dns = DNS(["127.0.0.1"])
    dns.hang = True  # a DNS server that never answers
    started = time.monotonic()
    async with asyncio.timeout(5), addresses.client([], 0.3, resolver=dns) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.post("http://slow-dns.example.com/", content=b"{}")
    assert time.monotonic() - started < 2


@pytest.fixture
def rebound(fast: Settings) -> Iterator[tuple[Receiver, Receiver, DNS, Settings]]:
    """A receiver at 127.0.0.2 (the network allowed) and one at 127.0.0.1 (the server's own
    loopback, not allowed) on the same port; a DNS that answers 127.0.0.2 for `localhost` to
    the first question and 127.0.0.1 after, while the system's resolver says 127.0.0.1."""
    port = free_port()
    allowed = Receiver(SECRET, port, host="127.0.0.2")
    internal = Receiver(SECRET, port, host="127.0.0.1")
    internal.answer = lambda call: (200, {"Content-Type": "application/json"})
    internal.body_for = lambda call: b'{"cancel": true, "message": "internal"}'
    settings = fast.model_copy(update={"webhook_allowed_networks": ["127.0.0.2/32"]})
    with running(allowed), running(internal):
        yield allowed, internal, DNS(["127.0.0.2"], ["127.0.0.1"]), settings


async def rebound_world(engine: AsyncEngine, port: int, hooks: list[str]) -> builders.World:
    config = builders.organization_config(service={"webhooks": hooks}) | {
        "webhooks": {"baseUrl": f"http://localhost:{port}", "secrets": [SECRET]}
    }
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return builders.world_of(config)


async def test_a_delivery_goes_to_the_address_checked_not_to_a_rebound_answer(
    db: Database,
    database_url: str,
    engine: AsyncEngine,
    rebound: tuple[Receiver, Receiver, DNS, Settings],
) -> None:
    allowed, internal, dns, settings = rebound
    world = await rebound_world(engine, allowed.port, ["afterBookAppointment"])
    async with delivering(settings, database_url, resolver=dns):
        (record,) = await book_many(db, world, 1)
        (call,) = await in_thread(allowed.wait_for, 1, 10)
    assert call.body["caseId"] == str(record.case_id)
    assert internal.calls == []  # a second resolution would have sent it to 127.0.0.1
    assert dns.questions == [("localhost", allowed.port)]  # resolved once


async def test_a_before_hook_goes_to_the_address_checked_not_to_a_rebound_answer(
    db: Database, engine: AsyncEngine, rebound: tuple[Receiver, Receiver, DNS, Settings]
) -> None:
    allowed, internal, dns, settings = rebound
    world = await rebound_world(engine, allowed.port, ["beforeBookAppointment"])
    hooks = BeforeHooks(settings, dns)
    command = booking(world, 0)
    try:
        catalog = await catalog_of(db, world)
        answered = await hooks.before_book(
            catalog, world.application_id, command, uuid.uuid4(), datetime.now(UTC)
        )
    finally:
        await hooks.close()
    assert answered == command  # the receiver at 127.0.0.1 would have cancelled it
    assert [c.path for c in allowed.calls] == ["/service/actions/beforeBookAppointment"]
    assert internal.calls == []
    assert dns.questions == [("localhost", allowed.port)]


async def test_a_pinned_https_call_keeps_the_name_for_host_sni_and_the_certificate() -> None:
    ca = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("receiver.test").configure_cert(served)
    server_names: list[str | None] = []
    served.sni_callback = lambda sock, name, context: server_names.append(name)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    dns = DNS(["127.0.0.1"])  # the system's resolver knows no receiver.test
    with running(Receiver(SECRET, free_port(), tls=served)) as receiver:
        allowed = addresses.networks(["127.0.0.1/32"])
        async with addresses.client(allowed, 5.0, resolver=dns, verify=trusting) as client:
            url = f"https://receiver.test:{receiver.port}/service/actions/afterBookAppointment"
            answer = await client.post(url, content=b"{}")
    assert answer.status_code == 204
    assert server_names == ["receiver.test"]  # SNI: the name, not the pinned address
    (call,) = receiver.calls
    assert call.headers["host"] == f"receiver.test:{receiver.port}"
    assert dns.questions == [("receiver.test", receiver.port)]


def test_the_schedule_has_jitter_and_honours_a_longer_retry_after() -> None:
    delays = [5.0, 300.0]
    assert next_delay_s(delays, 1, None, jitter=lambda: 1.1) == pytest.approx(5.5)
    assert next_delay_s(delays, 2, None, jitter=lambda: 0.9) == pytest.approx(270)
    assert next_delay_s(delays, 1, 120.0, jitter=lambda: 1.0) == 120.0
    assert next_delay_s(delays, 3, None) is None
    now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30
    assert retry_after_s("Tue, 01 Dec 2026 07:01:00 GMT", now) == 60
    assert retry_after_s("soon", now) is None


async def test_retry_after_of_a_429_delays_the_next_attempt(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    answers = iter([(429, {"Retry-After": "2"})])
    receiver.answer = lambda call: next(answers, (204, {}))
    async with delivering(fast, database_url):
        await book_many(db, hooked, 1)
        calls = await in_thread(receiver.wait_for, 1)
        await until_delivered(db, 1)
    assert len(calls) == 1
    assert [receiver.answer_of(c) for c in receiver.calls] == [429, 204]
    async with db.read() as conn:
        tries = await outbox.attempts(conn, uuid.UUID(calls[0].headers["webhook-id"]))
    assert [t["status_code"] for t in tries] == [429, 204]
    # The schedule says 0.2 s, the receiver said 2 s: the attempt's own times, not a sleep.
    assert tries[1]["attempted_at"] - tries[0]["attempted_at"] >= timedelta(seconds=2)


async def test_the_cli_lists_undelivered_events_and_redelivers_them(
    db: Database, fast: Settings, database_url: str, hooked: builders.World, receiver: Receiver
) -> None:
    from booking.cli import _webhooks

    receiver.answer = lambda call: (500, {})
    short = fast.model_copy(update={"webhook_retry_delays_s": [0.1]})
    async with delivering(short, database_url):
        await book_many(db, hooked, 1)
        await until_undelivered(db, hooked, "failed", 1)
    (line,) = await _webhooks(database_url, fast, [])
    assert " failed afterBookAppointment " in line
    assert "error=HTTP 500" in line
    event_id = uuid.UUID(line.split()[0])
    receiver.answer = lambda call: (204, {})
    assert await _webhooks(database_url, fast, [event_id]) == [f"queued again: {event_id}"]
    async with delivering(short, database_url):
        await in_thread(receiver.wait_for, 1)
        await until_delivered(db, 1)  # not cut off by the stop and given back pending
    assert await _webhooks(database_url, fast, []) == []


def test_a_webhook_secret_is_never_repeated_in_a_configuration_error() -> None:
    from booking.store.loader import ConfigFileError, parse_config

    weak = "whsec_" + base64.b64encode(b"short").decode()
    for secrets in ([weak], [SECRET, SECRET], ["not-prefixed-secret-value"]):
        config = builders.organization_config() | {
            "webhooks": {"baseUrl": "https://hooks.example.com", "secrets": secrets}
        }
        with pytest.raises(ConfigFileError) as refused:
            parse_config(json.dumps({"organizations": [config]}))
        message = str(refused.value)
        assert "webhooks.secrets" in message
        assert all(secret not in message for secret in secrets)


# --- real server processes (`booking-api serve`) ---------------------------------------------

TOKEN = "metrics-token-for-the-webhook-tests"


def delivered(url: str) -> float:
    """What the server process at `url` delivered, from its /metrics."""
    page = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    wanted = 'booking_webhook_attempts_total{hook="afterBookAppointment",outcome="delivered"}'
    return sum(float(line.split()[-1]) for line in page.splitlines() if line.startswith(wanted))


FAST = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "WEBHOOK_RETRY_DELAYS_S": "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
    "WEBHOOK_POLL_INTERVAL_S": "0.5",
    "WEBHOOK_TIMEOUT_S": "5",
    "WEBHOOK_LEASE_S": "6",
}


async def test_a_server_killed_mid_delivery_loses_nothing_and_resends_with_the_same_id(
    db: Database, database_url: str, hooked: builders.World, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.delay_s = 1.0  # the server is killed while calls wait for their answers
    records = await book_many(db, hooked, 30)
    with serve(database_url, tmp_path / "first", **FAST) as first:
        await in_thread(receiver.wait_for_arrivals, 1)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    with receiver.lock:
        in_flight_when_killed = set(receiver.arrivals)
    with serve(database_url, tmp_path / "second", **FAST):
        calls = await in_thread(receiver.wait_for_cases, len(records), 60)
        # The killed server's calls were answered 204 to nobody: its events are sent again once
        # their lease runs out, which may come after every other case has been delivered; and
        # a resend is in `receiver.calls` only once answered, `delay_s` after it came in.
        await in_thread(receiver.wait_for_second_calls, in_flight_when_killed, 60)
    ids_of_case: dict[str, set[str]] = defaultdict(set)
    for call in receiver.calls:
        ids_of_case[call.body["caseId"]].add(call.headers["webhook-id"])
    assert set(ids_of_case) == {str(r.case_id) for r in records}
    assert all(len(ids) == 1 for ids in ids_of_case.values())  # a resend has the same id
    assert in_flight_when_killed
    assert len(receiver.calls) > len(records)  # what was in flight when killed came again
    assert all(c.standard_signature_valid for c in calls)


async def test_a_stopping_server_gives_back_the_events_it_was_sending(
    db: Database, database_url: str, hooked: builders.World, receiver: Receiver, tmp_path: Path
) -> None:
    """SIGTERM mid-delivery: the process exits 0 and the events it had claimed are claimable
    again at once, not only when their lease runs out."""
    receiver.delay_s = 20.0  # the calls still wait for their answers when the stop comes
    await book_many(db, hooked, 3)
    lease = {**FAST, "WEBHOOK_LEASE_S": "60", "WEBHOOK_TIMEOUT_S": "30"}
    with serve(database_url, tmp_path / "stopping", **lease) as server:
        await in_thread(receiver.wait_for_arrivals, 1)
        async with db.read() as conn:
            leased = await conn.fetchval(
                "SELECT count(*) FROM webhook_event WHERE leased_until > clock_timestamp()"
            )
        assert leased >= 1
        server.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(server.process.wait, 15)
    assert exit_code == 0
    async with db.read() as conn:
        still_leased = await conn.fetchval(
            "SELECT count(*) FROM webhook_event WHERE leased_until > clock_timestamp()"
        )
    assert still_leased == 0


async def test_two_server_processes_never_send_one_event_twice_at_once(
    db: Database, database_url: str, hooked: builders.World, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.delay_s = 0.05
    with (
        serve(database_url, tmp_path / "a", METRICS_TOKEN=TOKEN, **FAST) as a,
        serve(database_url, tmp_path / "b", METRICS_TOKEN=TOKEN, **FAST) as b,
    ):
        records = await book_many(db, hooked, 300)
        calls = await in_thread(receiver.wait_for, len(records))
        await until_delivered(db, len(records))  # counted by then, and nothing left to send
        delivered_by = [delivered(server.url) for server in (a, b)]
    assert receiver.overlapping == []
    assert len(receiver.calls) == len(records)
    assert {c.body["caseId"] for c in calls} == {str(r.case_id) for r in records}
    assert sum(delivered_by) == len(records)
    assert min(delivered_by) > 0  # both processes took part


@pytest.mark.committed  # counts the round trips of the real store's connections
async def test_a_booking_with_the_hook_on_writes_its_event_in_its_insert_four_round_trips(
    db: Database, hooked: builders.World
) -> None:
    catalog = await catalog_of(db, hooked)
    counting = CountingDatabase(db)
    await appointments.book(
        counting, catalog, hooked.application_id, booking(hooked, 0), datetime.now(UTC)
    )
    begin, intervals, insert, commit = counting.sent
    assert "pg_advisory_xact_lock" in begin
    assert "FROM appointment" in intervals
    assert "INSERT INTO appointment" in insert
    assert "INSERT INTO webhook_event" in insert
    assert commit == "COMMIT"


OPERATOR = "Webhooks Operator"


@pytest.fixture
async def operated(engine: AsyncEngine, receiver: Receiver) -> builders.World:
    """As `hooked`, its application also a Webhooks Operator."""
    config = builders.organization_config(service={"webhooks": ["afterBookAppointment"]}) | {
        "webhooks": {"baseUrl": receiver.url, "secrets": [SECRET]}
    }
    config["applications"][0]["roles"] = [builders.MANAGER, OPERATOR]
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return builders.world_of(config)


async def test_an_operator_lists_failed_events_and_redelivers_them_over_the_api(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Database,
    operated: builders.World,
    engine: AsyncEngine,
) -> None:
    (record,) = await book_many(db, operated, 1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_event SET state = 'failed', attempts = 10, last_error = 'HTTP 500'"
            )
        )
    operator = bearer(settings, operated.client_id, [OPERATOR])
    path = f"/{operated.application_id}/webhooks"

    listed = await client.get(path + "/undelivered", headers=operator)
    assert listed.status_code == 200, listed.text
    (event,) = listed.json()
    assert event["caseId"] == str(record.case_id)
    assert (event["state"], event["attempts"], event["lastError"]) == ("failed", 10, "HTTP 500")
    assert event["eventSequence"] == 1

    manager = bearer(settings, operated.client_id, [builders.MANAGER])
    assert (await client.get(path + "/undelivered", headers=manager)).status_code == 403

    again = await client.post(f"{path}/events/{event['eventId']}/redeliver", headers=operator)
    assert again.status_code == 202
    async with engine.connect() as conn:
        state = (await conn.execute(text("SELECT state, attempts FROM webhook_event"))).one()
    assert tuple(state) == ("pending", 0)
    unknown = await client.post(f"{path}/events/{uuid.uuid4()}/redeliver", headers=operator)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "webhook_event_not_found"


# --- beforeBookAppointment -------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app of these tests calls receivers on 127.0.0.1."""
    return settings.model_copy(update={"webhook_allowed_networks": ["127.0.0.1/32"]})


async def before_hooked(
    engine: AsyncEngine,
    receiver: Receiver,
    hooks: tuple[str, ...] = ("beforeBookAppointment", "afterBookAppointment"),
    **webhooks: object,
) -> tuple[builders.World, dict[str, Any]]:
    """An organization whose service calls `hooks` on the receiver, with `webhooks` settings,
    one tag and one text field type."""
    config = builders.organization_config(service={"webhooks": list(hooks)}) | {
        "webhooks": {"baseUrl": receiver.url, "secrets": [SECRET], **webhooks}
    }
    config["tags"] = [{"id": str(uuid.uuid4()), "name": "VIP"}]
    config["fieldTypes"] = [{"id": str(uuid.uuid4()), "name": "Note", "kind": "text"}]
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return builders.world_of(config), config


async def test_a_before_hook_that_cancels_answers_422_with_its_message(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, receiver: Receiver
) -> None:
    world, _ = await before_hooked(engine, receiver)
    receiver.answer = lambda call: (200, {"Content-Type": "application/json"})
    receiver.body_for = lambda call: b'{"cancel": true, "message": "No bookings on strike days."}'
    refused = await book(client, world, bearer(settings, world.client_id))
    assert refused.status_code == 422
    assert refused.json()["code"] == "cancelled_by_webhook"
    assert refused.json()["detail"] == "No bookings on strike days."
    (call,) = receiver.calls
    assert call.path == "/service/actions/beforeBookAppointment"
    assert call.standard_signature_valid
    assert call.body["ticket"]["number"] is None
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM appointment"))).scalar_one() == 0


async def test_a_before_hook_changes_fields_and_tags_and_every_rule_checks_them_again(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, receiver: Receiver
) -> None:
    world, config = await before_hooked(engine, receiver)
    field_id, tag_id = config["fieldTypes"][0]["id"], config["tags"][0]["id"]
    answer = {"fields": {field_id: "met at the door"}, "tagIds": [tag_id]}
    receiver.answer = lambda call: (200, {"Content-Type": "application/json"})
    receiver.body_for = lambda call: orjson.dumps(answer)
    auth = bearer(settings, world.client_id)
    booked = await book(client, world, auth)
    assert booked.status_code == 201, booked.text
    assert booked.json()["fields"] == {field_id: "met at the door"}
    assert booked.json()["tagIds"] == [tag_id]

    answer = {"tagIds": [str(uuid.uuid4())]}  # a tag that does not exist
    refused = await book(client, world, auth, 600)
    assert refused.status_code == 404
    assert refused.json()["code"] == "tag_not_found"


@pytest.mark.parametrize(
    ("on_failure", "status"), [("refuse", 503), ("book", 201)], ids=["refuse", "book"]
)
async def test_a_before_hook_that_times_out_refuses_or_books_as_the_organization_says(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    receiver: Receiver,
    on_failure: str,
    status: int,
) -> None:
    world, _ = await before_hooked(
        engine, receiver, beforeHookTimeoutMs=200, onBeforeHookFailure=on_failure
    )
    receiver.delay_s = 1.0
    started = time.monotonic()
    answered = await book(client, world, bearer(settings, world.client_id))
    assert time.monotonic() - started < 0.9  # the timeout, not the receiver, decides
    assert answered.status_code == status, answered.text
    if status == 503:
        assert answered.json()["code"] == "webhook_unavailable"


async def test_events_wait_while_the_organizations_webhooks_are_disabled(
    db: Database,
    fast: Settings,
    database_url: str,
    hooked: builders.World,
    receiver: Receiver,
    engine: AsyncEngine,
) -> None:
    await book_many(db, hooked, 2)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_endpoint SET enabled = false"))
    async with delivering(fast, database_url):
        await asyncio.sleep(1.2)
        assert receiver.calls == []
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE webhook_endpoint SET enabled = true"))
        calls = await in_thread(receiver.wait_for, 2)
    assert len(calls) == 2


@pytest.fixture
async def moving(engine: AsyncEngine, receiver: Receiver) -> builders.World:
    """An organization whose service announces check-ins and reschedules only."""
    config = builders.organization_config(
        service={"webhooks": ["afterCheckIn", "afterRescheduleAppointment"]}
    ) | {"webhooks": {"baseUrl": receiver.url, "secrets": [SECRET]}}
    async with engine.begin() as conn:
        await builders.load(conn, config)
    return builders.world_of(config)


async def test_a_check_in_writes_its_event_and_the_receiver_gets_it(
    db: Database, fast: Settings, database_url: str, moving: builders.World, receiver: Receiver
) -> None:
    (record,) = await book_many(db, moving, 1)
    catalog = await catalog_of(db, moving)
    command = CheckIn(day=booking(moving, 0).day, case_id=record.case_id, mode=CheckInMode.AGENT)
    await appointments.check_in(db, catalog, command, record.starts_at - timedelta(minutes=10))
    async with db.read() as conn:
        hooks = await conn.fetchval(
            "SELECT array_agg(hook) FROM webhook_event WHERE case_id = $1", record.case_id
        )
    assert hooks == ["afterCheckIn"]  # the booking itself announces nothing here
    async with delivering(fast, database_url):
        (call,) = await in_thread(receiver.wait_for, 1)
    assert call.path == "/service/actions/afterCheckIn"
    assert call.body["caseId"] == str(record.case_id)
    assert call.body["status"] == str(AppointmentStatus.WAITING)
    assert call.body["eventSequence"] == 1
    assert call.standard_signature_valid


async def test_a_reschedule_writes_its_event_and_the_receiver_gets_it(
    db: Database, fast: Settings, database_url: str, moving: builders.World, receiver: Receiver
) -> None:
    (record,) = await book_many(db, moving, 1)
    catalog = await catalog_of(db, moving)
    day = booking(moving, 0).day
    command = RescheduleAppointment(day=day, case_id=record.case_id, to=day, start_minute=STARTS[1])
    await appointments.reschedule(db, catalog, moving.application_id, command, datetime.now(UTC))
    async with delivering(fast, database_url):
        (call,) = await in_thread(receiver.wait_for, 1)
    assert call.path == "/service/actions/afterRescheduleAppointment"
    assert call.body["caseId"] == str(record.case_id)
    assert call.body["appointment"]["start"] == STARTS[1] != record.start_minute
    assert call.body["eventSequence"] == 1
    assert call.standard_signature_valid


async def test_a_reschedule_announces_the_old_time_and_the_new_one_in_one_shape(
    db: Database, fast: Settings, database_url: str, moving: builders.World, receiver: Receiver
) -> None:
    (record,) = await book_many(db, moving, 1)
    catalog = await catalog_of(db, moving)
    to = booking(moving, len(STARTS) + 1)  # the next day, the second start
    command = RescheduleAppointment(
        day=booking(moving, 0).day, case_id=record.case_id, to=to.day, start_minute=to.start_minute
    )
    await appointments.reschedule(db, catalog, moving.application_id, command, datetime.now(UTC))
    async with delivering(fast, database_url):
        (call,) = await in_thread(receiver.wait_for, 1)
    old, new = record.on_date.isoformat(), to.day.on_date.isoformat()
    assert call.body["previousAppointment"] == {
        "date": f"{old}T00:00:00",
        "cuIndex": 0,
        "start": 480,
        "timeLocal": f"{old}T08:00:00",
        "timeUtc": record.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timeZoneId": "GMT Standard Time",
        "duration": 30,
    }
    now_at = call.body["appointment"]
    assert (now_at["date"], now_at["start"], now_at["timeLocal"]) == (
        f"{new}T00:00:00",
        510,
        f"{new}T08:30:00",
    )
    assert set(now_at) == {*call.body["previousAppointment"], "preventSelfCheckIn"}


# --- beforeCheckIn ---------------------------------------------------------------------------

CHECK_IN_HOOKS = ("beforeCheckIn", "afterCheckIn")


@dataclass(frozen=True)
class Arrival:
    world: builders.World
    auth: dict[str, str]
    case_id: str
    field_id: str  # the organization's text field "Note", "booked" in the appointment
    tag_id: str  # the organization's tag, not on the appointment


@pytest.fixture
async def arrival(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    receiver: Receiver,
    clock: FakeClock,
) -> Arrival:
    """An appointment booked today at 09:00 London (09:00 UTC in December) of a service that
    calls beforeCheckIn and announces afterCheckIn; the clock then at 08:30, inside its
    check-in window."""
    world, config = await before_hooked(engine, receiver, CHECK_IN_HOOKS)
    field_id, tag_id = config["fieldTypes"][0]["id"], config["tags"][0]["id"]
    auth = bearer(settings, world.client_id)
    booked = await book(client, world, auth, 540, on_date=TODAY, fields={field_id: "booked"})
    assert booked.status_code == 201, booked.text
    clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    return Arrival(world, auth, booked.json()["caseId"], field_id, tag_id)


async def checking_in(client: httpx.AsyncClient, arrival: Arrival) -> httpx.Response:
    return await check_in(client, arrival.world, arrival.auth, arrival.case_id)


def answering(receiver: Receiver, answer: dict[str, Any]) -> None:
    receiver.answer = lambda call: (200, {"Content-Type": "application/json"})
    receiver.body_for = lambda call: orjson.dumps(answer)


async def status_and_events(engine: AsyncEngine, case_id: str) -> tuple[str, list[Any]]:
    """The appointment's status and the payloads of its afterCheckIn events."""
    async with engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status FROM appointment WHERE id = :id"), {"id": case_id}
            )
        ).scalar_one()
        payloads = (
            await conn.execute(
                text("SELECT payload FROM webhook_event WHERE hook = 'afterCheckIn'")
            )
        ).scalars()
        return status, list(payloads)


async def test_a_before_check_in_that_cancels_answers_422_and_checks_nothing_in(
    client: httpx.AsyncClient, engine: AsyncEngine, receiver: Receiver, arrival: Arrival
) -> None:
    answering(receiver, {"cancel": True, "message": "Your documents are not ready yet."})
    problem = assert_problem(await checking_in(client, arrival), 422, "cancelled_by_webhook")
    assert problem["detail"] == "Your documents are not ready yet."
    (call,) = receiver.calls
    assert call.path == "/service/actions/beforeCheckIn"
    assert call.standard_signature_valid
    assert call.body["caseId"] == arrival.case_id
    assert call.body["status"] == "Waiting"  # as the check-in would leave it
    assert call.body["fields"] == {arrival.field_id: "booked"}
    assert "eventSequence" not in call.body
    assert await status_and_events(engine, arrival.case_id) == ("Planned", [])


async def test_a_before_check_in_replaces_fields_and_tags_saved_answered_and_announced(
    client: httpx.AsyncClient, engine: AsyncEngine, receiver: Receiver, arrival: Arrival
) -> None:
    changed = {"fields": {arrival.field_id: "arrived early"}, "tagIds": [arrival.tag_id]}
    answering(receiver, changed)
    checked_in = await checking_in(client, arrival)
    assert checked_in.status_code == 200, checked_in.text
    assert {k: checked_in.json()[k] for k in changed} == changed
    path = f"/{arrival.world.application_id}/appointments/{arrival.case_id}"
    read = (await client.get(path, headers=arrival.auth)).json()
    assert {k: read[k] for k in changed} == changed
    status, (announced,) = await status_and_events(engine, arrival.case_id)
    assert status == "Waiting"
    assert {k: announced[k] for k in changed} == changed


async def test_a_before_check_in_is_not_called_again_for_a_repeated_check_in(
    client: httpx.AsyncClient, receiver: Receiver, arrival: Arrival
) -> None:
    first = await checking_in(client, arrival)
    assert first.status_code == 200, first.text
    again = await checking_in(client, arrival)
    assert again.json() == first.json()
    assert len(receiver.calls) == 1


async def test_a_check_in_the_rules_refuse_calls_no_before_check_in(
    client: httpx.AsyncClient, receiver: Receiver, arrival: Arrival, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 12, 1, 7, 30, tzinfo=UTC))  # the window opens at 08:00
    assert_problem(await checking_in(client, arrival), 422, "outside_check_in_window")
    assert receiver.calls == []


async def test_fields_and_tags_a_before_check_in_gives_are_checked_by_the_booking_rules(
    client: httpx.AsyncClient, engine: AsyncEngine, receiver: Receiver, arrival: Arrival
) -> None:
    answering(receiver, {"fields": {arrival.field_id: 42}, "tagIds": [str(uuid.uuid4())]})
    problem = assert_problem(
        await checking_in(client, arrival), 422, "invalid_field_value", f"fields.{arrival.field_id}"
    )
    assert [e["code"] for e in problem["errors"]] == ["invalid_field_value", "tag_not_found"]
    assert "Field 'Note' must be a string" in problem["detail"]
    assert await status_and_events(engine, arrival.case_id) == ("Planned", [])


@pytest.mark.parametrize(
    ("on_failure", "status"), [("refuse", 503), ("book", 200)], ids=["refuse", "go-on"]
)
async def test_a_before_check_in_that_times_out_refuses_or_checks_in_as_the_organization_says(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    receiver: Receiver,
    arrival: Arrival,
    on_failure: str,
    status: int,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_endpoint SET before_hook_timeout_ms = 200, "
                "on_before_hook_failure = :on_failure"
            ),
            {"on_failure": on_failure},
        )
    answering(receiver, {"tagIds": [arrival.tag_id]})  # too late to count
    receiver.delay_s = 1.0
    started = time.monotonic()
    answered = await checking_in(client, arrival)
    assert time.monotonic() - started < 0.9  # the timeout, not the receiver, decides
    assert answered.status_code == status, answered.text
    if status == 503:
        assert answered.json()["code"] == "webhook_unavailable"
        assert await status_and_events(engine, arrival.case_id) == ("Planned", [])
    else:
        assert (answered.json()["status"], answered.json()["tagIds"]) == ("Waiting", [])


async def test_a_before_check_in_answer_with_a_key_of_the_booking_hook_is_a_failure(
    client: httpx.AsyncClient, engine: AsyncEngine, receiver: Receiver, arrival: Arrival
) -> None:
    answering(receiver, {"channel": "Phone"})  # beforeBookAppointment's, not beforeCheckIn's
    assert_problem(await checking_in(client, arrival), 503, "webhook_unavailable")
    assert await status_and_events(engine, arrival.case_id) == ("Planned", [])


async def test_a_before_check_in_is_called_without_the_calendar_days_lock(
    db: Database, settings: Settings, database_url: str, engine: AsyncEngine, receiver: Receiver
) -> None:
    """While the receiver takes its time, another write of the same calendar-day (which takes
    its lock) goes through: the check-in holds neither the lock nor a connection then."""
    world, _ = await before_hooked(engine, receiver, CHECK_IN_HOOKS)
    checking_in, other = await book_many(db, world, 2)
    catalog = await catalog_of(db, world)
    day = booking(world, 0).day
    receiver.delay_s = 1.0
    hooks = BeforeHooks(settings)
    try:
        command = CheckIn(day=day, case_id=checking_in.case_id, mode=CheckInMode.AGENT)
        at = checking_in.starts_at - timedelta(minutes=10)
        task = asyncio.create_task(appointments.check_in(db, catalog, command, at, hooks=hooks))
        await in_thread(receiver.wait_for_arrivals, 1)
        cancel = CancelAppointment(day, other.case_id)
        cancelled = await asyncio.wait_for(appointments.cancel(db, catalog, cancel, at), 0.5)
        assert cancelled.status is AppointmentStatus.CANCELLED
        assert not task.done()  # the receiver still holds the check-in
        assert (await task).status is AppointmentStatus.WAITING
    finally:
        await hooks.close()
