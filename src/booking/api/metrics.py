"""Request metrics and `/metrics`, as one pure ASGI middleware (the outermost one, so that it
also sees the answers other middleware give: 413, 429).

Per request: two clock reads, one dict look-up of the (route, method, status) children and two
increments; the route is the template FastAPI matched (`/{applicationId}/...`), so the label
set stays small whatever the paths. Booking outcomes are read off the booking route's answer:
201 booked, 409 conflict, `Idempotent-Replayed` a replay; 429 on any route is a rate limit.

`/metrics` is served only with `Authorization: Bearer <METRICS_TOKEN>`; without that setting
the path is not special (404).
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson
from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booking import metrics
from booking.api.routes.paths import CALENDAR_UNIT

BOOKING_ROUTE = CALENDAR_UNIT + "/appointments"
METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # no route: one label for every unknown path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REPLAYED = b"idempotent-replayed"


def _problem_401(code: str, detail: str) -> bytes:
    return orjson.dumps(
        {
            "type": f"urn:booking-api:problem:{code}",
            "title": "Unauthorized",
            "status": 401,
            "detail": detail,
            "code": code,
        }
    )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.expected is not None and scope["path"] == METRICS_PATH:
            await self._serve_metrics(scope, send)
            return
        started = time.perf_counter()
        answer = [500, False]  # status, replayed

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
                answer[1] = any(name == _REPLAYED for name, _ in message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._record(scope, int(answer[0]), bool(answer[1]), time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, replayed: bool, seconds: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                metrics.HTTP_REQUESTS.labels(template, method, str(status)),
                metrics.HTTP_REQUEST_DURATION.labels(template, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if replayed:
            metrics.IDEMPOTENT_REPLAYS.inc()
        elif template == BOOKING_ROUTE and method == "POST":
            if status == 201:
                metrics.BOOKINGS.inc()
            elif status == 409:
                metrics.BOOKING_CONFLICTS.inc()
        if status == 429:
            metrics.RATE_LIMITED.inc()

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        supplied = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        assert self.expected is not None
        if supplied is None:
            status, body = 401, _problem_401("token_missing", "Metrics need the metrics token.")
            content_type = b"application/problem+json"
        elif not hmac.compare_digest(supplied, self.expected):
            status, body = 401, _problem_401("token_invalid", "That is not the metrics token.")
            content_type = b"application/problem+json"
        else:
            status, body, content_type = 200, metrics.exposition(), metrics.CONTENT_TYPE.encode()
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
