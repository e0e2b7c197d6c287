"""What pieces of the booking request path cost, in microseconds of CPU, each measured against the
way it was done before (issue 17's changes), in this process: no database, no HTTP server. Each
figure is the best of several runs, so that a busy spell of the machine does not count.

    .venv/bin/python bench/micro.py

- route: the booking route's parameters (a dependency for the caller, one for the services,
  three path parameters, the JSON body, the Request) solved by FastAPI, against LeanRoute;
- telemetry: a request through FastAPI with its own OpenTelemetry on (the default, no provider
  set) and off;
- answer: the 201's body built as models and encoded by pydantic, against a document encoded by
  orjson;
- rate limit: a check of one limit with limits' asynchronous memory storage, against its
  synchronous one, in a running event loop (where the asynchronous one starts its expiry task);
- intervals: what a booking makes of the occupied intervals of a calendar-day with 27
  appointments (the whole day, as read before), against those overlapping its slot (one);
- routing: the booking route behind `include_router` (FastAPI then keeps the router as a
  matcher of its own) against the route in the app's own router (`app.mount_routes`);
- route app: a LeanRoute served by FastAPI's `request_response` (two exit stacks and its own
  exception catching per request) against its plain ASGI app;
- rate limit (Limiter): a check of the application limit with limits' strategy on its memory
  storage (hit, then the window's stats), against `Limiter.hit` on `ProcessCounters`.
- record: the booking's `AppointmentRecord` made by keyword (as `inserted` made it) against
  by position (`store.appointments.inserted`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.routing import request_response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message

from booking.api import lean_route
from booking.api.lean_route import LeanRoute
from booking.api.ratelimit import Limiter, ProcessCounters
from booking.api.routes.paths import CuIndex, OnDate, ServiceId
from booking.api.schemas import (
    AppointmentOut,
    AppointmentTime,
    BookAppointmentRequest,
    CustomerRef,
    Ticket,
    _iso_local,
    _iso_utc,
    _timestamp,
    appointment_json,
)
from booking.domain import AppointmentStatus, Channel
from booking.service import rules
from booking.service.wallclock import local_datetime, windows_time_zone
from booking.store.appointments import INSERTED_COLUMNS, AppointmentRecord, inserted

ROUNDS = 7


def best_of(run: Callable[[], float]) -> float:
    return min(run() for _ in range(ROUNDS))


def sync_cost(call: Callable[[], Any], n: int = 5000) -> float:
    def run() -> float:
        started = time.process_time()
        for _ in range(n):
            call()
        return (time.process_time() - started) / n * 1e6

    return best_of(run)


def async_cost(call: Callable[[], Awaitable[Any]], n: int = 3000) -> float:
    async def run_all() -> float:
        async def run() -> float:
            started = time.process_time()
            for _ in range(n):
                await call()
            return (time.process_time() - started) / n * 1e6

        return min([await run() for _ in range(ROUNDS)])

    import uvloop

    return uvloop.run(run_all())


# --- route --------------------------------------------------------------------------------


async def caller(
    request: Request, application_id: Annotated[uuid.UUID, Path(alias="applicationId")]
) -> uuid.UUID:
    return application_id


async def services(request: Request) -> None:
    return None


async def book(
    who: Annotated[uuid.UUID, Depends(caller)],
    runtime: Annotated[None, Depends(services)],
    service_id: ServiceId,
    on_date: OnDate,
    cu_index: CuIndex,
    body: BookAppointmentRequest,
    request: Request,
) -> Response:
    return Response(b"{}", 201, media_type="application/json")


PATH = "/{applicationId}/calendars/{serviceId}/{date}/{cuIndex}/appointments"
BODY = orjson.dumps(
    {
        "serviceTypeId": str(uuid.uuid4()),
        "startTime": 600,
        "channel": "FaceToFace",
        "contactPhoneNumber": "020 7946 0018",
        "contactEmail": "bench@example.com",
    }
)


def _fastapi_app(handle: lean_route.Handler) -> ASGIApp:
    """FastAPI's `request_response` in place of `_lean_app` (it names its parameter `func`)."""
    return request_response(handle)


def app_of(
    route_class: type[Any] | None,
    telemetry: bool = False,
    *,
    mounted: bool = False,
    requests_as_fastapi: bool = False,
) -> FastAPI:
    """An app of the booking route behind `include_router` (as before), or `mounted` in the app's
    own router (`app.mount_routes`); a LeanRoute served by FastAPI's `request_response` when
    `requests_as_fastapi`, else by its plain ASGI app."""
    off = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(redirect_slashes=False, telemetry=None if telemetry else off)  # type: ignore[arg-type]
    lean_app = lean_route._lean_app
    if requests_as_fastapi:
        lean_route._lean_app = _fastapi_app
    try:
        router = APIRouter() if route_class is None else APIRouter(route_class=route_class)
        router.add_api_route(PATH, book, methods=["POST"], status_code=201)
    finally:
        lean_route._lean_app = lean_app
    if mounted:
        app.router.routes.extend(router.routes)
    else:
        app.include_router(router)
    return app


def request_of(app: FastAPI) -> Callable[[], Awaitable[None]]:
    path = f"/{uuid.uuid4()}/calendars/{uuid.uuid4()}/2026-12-02/3/appointments"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 201, message

    async def call() -> None:
        await app(dict(scope), receive, send)

    return call


# --- answer ---------------------------------------------------------------------------------

NOW = datetime.now(UTC)
RECORD = AppointmentRecord(
    case_id=uuid.uuid4(),
    service_id=uuid.uuid4(),
    on_date=date(2026, 12, 2),
    cu_index=3,
    start_minute=600,
    duration_minutes=10,
    no_show_probability=0.0,
    starts_at=NOW,
    time_zone="Europe/London",
    ticket_prefix="A",
    ticket_number=12,
    service_type_id=uuid.uuid4(),
    service_type_name="Passport",
    status=AppointmentStatus.PLANNED,
    status_date=NOW,
    created_at=NOW,
    closed_at=None,
    cancelled_at=None,
    customer_record_id=None,
    customer_display_name=None,
    channel=Channel.FACE_TO_FACE,
    language="en",
    contact_phone="+442079460018",
    contact_email="bench@example.com",
    prevent_self_check_in=False,
    bypassed_timeslot_check=False,
    fields={},
    tag_ids=[],
    reservation_token=None,
    reservation_expires_at=None,
    rescheduled_from_date=None,
    rescheduled_from_cu_index=None,
    rescheduled_from_start=None,
)
CATALOG: Any = SimpleNamespace(services={}, customers=SimpleNamespace(id=uuid.uuid4()))


def answer_as_models(r: AppointmentRecord) -> bytes:
    """The 201's body as it was built before: models, encoded by pydantic."""
    model: BaseModel = AppointmentOut.model_construct(
        case_id=r.case_id,
        appointment=AppointmentTime.model_construct(
            service_id=r.service_id,
            date=_iso_local(local_datetime(r.on_date, 0)),
            cu_index=r.cu_index,
            start=r.start_minute,
            time_local=_iso_local(local_datetime(r.on_date, r.start_minute)),
            time_utc=_iso_utc(r.starts_at),
            time_zone_id=windows_time_zone(r.time_zone),
            iana_time_zone_id=r.time_zone,
            duration=r.duration_minutes,
            no_show_probability=r.no_show_probability,
            reservation_token=None,
            reservation_expiry_date=None,
        ),
        ticket=Ticket.model_construct(prefix=r.ticket_prefix, number=r.ticket_number),
        service_category_id=None,
        service_category_name=None,
        service_type_id=r.service_type_id,
        service_type_name=r.service_type_name,
        service_type_color_code=None,
        status=r.status,
        status_date=_timestamp(r.status_date),
        reference_date=_iso_utc(r.starts_at),
        date_opened=_timestamp(r.created_at),
        date_closed=None,
        date_cancelled=None,
        customer=None
        if r.customer_record_id is None or r.customer_display_name is None
        else CustomerRef.model_construct(
            data_table_id=CATALOG.customers.id,
            record_id=r.customer_record_id,
            display_name=r.customer_display_name,
        ),
        channel=r.channel,
        language=r.language,
        contact_phone_number=r.contact_phone,
        contact_email=r.contact_email,
        prevent_self_check_in=r.prevent_self_check_in,
        bypassed_timeslot_check=r.bypassed_timeslot_check,
        fields=r.fields,
        tag_ids=r.tag_ids,
        rescheduled_from=None,
    )
    return model.model_dump_json(by_alias=True).encode()


# --- rate limit -----------------------------------------------------------------------------


def rate_limit_checks() -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from limits import parse
    from limits.aio.storage import MemoryStorage as AsyncMemory
    from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindow
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    item = parse("1000000000/second")
    asynchronous = AsyncFixedWindow(AsyncMemory())
    synchronous = FixedWindowRateLimiter(MemoryStorage())

    async def before() -> None:
        await asynchronous.hit(item, "application", "k")
        await asynchronous.get_window_stats(item, "application", "k")
        await asyncio.sleep(0)  # other requests run meanwhile

    async def after() -> None:
        synchronous.hit(item, "application", "k")
        synchronous.get_window_stats(item, "application", "k")
        await asyncio.sleep(0)

    return before, after


_INSERTED_FIELDS = tuple(
    f.name for f in dataclasses.fields(AppointmentRecord) if f.name in INSERTED_COLUMNS
)


def inserted_by_name(
    row: dict[str, Any], ticket_number: int, type_name: str, customer: str | None
) -> AppointmentRecord:
    """`store.appointments.inserted` as it was: the record made by keyword."""
    return AppointmentRecord(
        **{name: row[name] for name in _INSERTED_FIELDS},
        case_id=row["id"],
        ticket_number=ticket_number,
        service_type_name=type_name,
        customer_display_name=customer,
        closed_at=None,
        cancelled_at=None,
    )


def limiter_checks() -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """One check of the application limit as Limiter.hit made it before (limits' strategy on its
    memory storage: hit, then the window's stats, the key made three times) and as it is."""
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    item = parse("1000000000/second")
    strategy = FixedWindowRateLimiter(MemoryStorage())
    limiter = Limiter("application", [item], ProcessCounters())

    async def before() -> None:
        strategy.hit(item, "application", "k")
        stats = strategy.get_window_stats(item, "application", "k")
        _ = f'"application-1s";r={stats.remaining};t={max(0, int(stats.reset_time - time.time()))}'
        await asyncio.sleep(0)

    async def after() -> None:
        await limiter.hit("k")
        await asyncio.sleep(0)

    return before, after


def main() -> int:
    lines: list[tuple[str, float, float]] = []
    lines.append(
        (
            "route: parameters solved by FastAPI / by LeanRoute",
            async_cost(request_of(app_of(None))),
            async_cost(request_of(app_of(LeanRoute))),
        )
    )
    lines.append(
        (
            "telemetry: FastAPI's own on / off (LeanRoute)",
            async_cost(request_of(app_of(LeanRoute, telemetry=True))),
            async_cost(request_of(app_of(LeanRoute))),
        )
    )
    assert orjson.loads(answer_as_models(RECORD)) == orjson.loads(appointment_json(RECORD, CATALOG))
    lines.append(
        (
            "answer: models + pydantic / document + orjson",
            sync_cost(lambda: answer_as_models(RECORD)),
            sync_cost(lambda: appointment_json(RECORD, CATALOG)),
        )
    )
    before, after = rate_limit_checks()
    lines.append(
        (
            "rate limit: limits' async memory / sync memory (+ one loop turn)",
            async_cost(before),
            async_cost(after),
        )
    )
    lines.append(
        (
            "routing: the route behind include_router / in the app's router",
            async_cost(request_of(app_of(LeanRoute, mounted=False))),
            async_cost(request_of(app_of(LeanRoute, mounted=True))),
        )
    )
    lines.append(
        (
            "route app: FastAPI's request_response / LeanRoute's plain one",
            async_cost(request_of(app_of(LeanRoute, mounted=True, requests_as_fastapi=True))),
            async_cost(request_of(app_of(LeanRoute, mounted=True))),
        )
    )
    before, after = limiter_checks()
    lines.append(
        (
            "rate limit: limits' strategy / Limiter on ProcessCounters (+ a turn)",
            async_cost(before),
            async_cost(after),
        )
    )
    row = {name: getattr(RECORD, name) for name in INSERTED_COLUMNS if hasattr(RECORD, name)}
    row["id"] = RECORD.case_id
    assert inserted(row, RECORD.ticket_number, RECORD.service_type_name, None) == RECORD
    assert inserted_by_name(row, RECORD.ticket_number, RECORD.service_type_name, None) == RECORD
    lines.append(
        (
            "record: by keyword / by position (store.appointments.inserted)",
            sync_cost(lambda: inserted_by_name(row, 12, "Passport", None)),
            sync_cost(lambda: inserted(row, 12, "Passport", None)),
        )
    )
    whole_day = [(start, 10) for start in range(480, 750, 10)]  # 27 appointments
    lines.append(
        (
            "intervals: the whole day's 27 / the 1 overlapping",
            sync_cost(lambda: rules.intervals_of(whole_day)),
            sync_cost(lambda: rules.intervals_of(whole_day[:1])),
        )
    )
    print(f"{'piece':<66} {'before µs':>10} {'after µs':>10} {'saved':>8}")
    for name, was, now in lines:
        print(f"{name:<66} {was:>10.1f} {now:>10.1f} {was - now:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
