"""The HTTP/1.1 protocol `booking-api serve` runs: uvicorn's httptools protocol with the bounds
uvicorn lacks, enforced before a request reaches the application.

- The request head (request line and headers) may be at most MAX_HEADER_BYTES: beyond that the
  answer is 431 and the connection closes. (uvicorn bounds the head only with h11, its slower
  parser, through `h11_max_incomplete_event_size`; httptools accumulates any size, and
  re-concatenates a long header on every chunk read.)
- The head must be complete within HEADER_TIMEOUT_S of the connection opening, or of the first
  byte of a following request: else 408 and close. (uvicorn's `timeout_keep_alive` only runs
  between requests, and any byte resets it, so a client sending a header a byte at a time, or
  nothing at all, was held forever.)
- At most MAX_CONNECTIONS connections per process: the next ones get 503 at once and are
  closed. (uvicorn's `limit_concurrency` accepts them all and refuses only after reading a
  head, so it never sheds slow clients.)

And one thing uvicorn does that costs: it writes a response's head as soon as the application
starts the answer, then the body, two sends (two system calls, two TCP segments) for every
answer. Here the head waits for the first write of the body (`_HeadWithBody`).

Slow bodies are the middleware's (BODY_TIMEOUT_S): the application is waiting for them, and
its answer carries the request id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from booking.settings import Settings


class HeadTooLarge(Exception):
    pass


@cache
def _settings() -> Settings:
    """The worker's settings, from the environment like the app's (see `app_from_env`)."""
    return Settings()


def _refusal(status: int, code: str, detail: str, extra_headers: bytes = b"") -> bytes:
    body = orjson.dumps(
        {
            "type": f"urn:booking-api:problem:{code}",
            "title": STATUS_LINE[status].decode().split(" ", 2)[2].strip(),
            "status": status,
            "detail": detail,
            "code": code,
        }
    )
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            extra_headers,
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _HeadWithBody:
    """The connection's transport as one request's cycle sees it: the response head (its first
    write once the answer has started) is held until its next write, the body, and both go out
    in one send. A response with nothing written after its head (the answer to HEAD) sends it
    when it completes, and closing sends it first. Before the answer starts (100 Continue),
    writes go out at once."""

    __slots__ = ("_cycle", "_head", "_head_written", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None  # held, not yet sent
        self._head_written = False
        on_response = cycle.on_response
        cycle.on_response = lambda: self._completed(on_response)

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._cycle.response_started and not self._head_written:
            self._head, self._head_written = data, True
            return
        self._transport.write(data)

    def _completed(self, on_response: Callable[[], None]) -> None:
        self._flush()
        on_response()

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = _settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout_s = settings.header_timeout_s
        self.max_connections = settings.max_connections
        self._reading_head = True  # from the connection's start or a message's end to its head
        self._head_bytes = 0
        self._head_started: float | None = None  # when the head being read began
        self._head_check: asyncio.TimerHandle | None = None
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(
                _refusal(
                    503,
                    "too_many_connections",
                    "The server has too many open connections; retry shortly.",
                    b"retry-after: 1\r\n",
                )
            )
            return
        self._head_started = self.loop.time()
        self._head_check = self.loop.call_later(self.header_timeout_s, self._check_head_time)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_check is not None:
            self._head_check.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_started is None:  # the first bytes of a following request
                self._head_started = self.loop.time()
        super().data_received(data)
        # A head still incomplete after this chunk: the parser has seen at most one read
        # (256 KiB) beyond the limit. A complete one is measured in on_headers_complete.
        if (
            self._reading_head
            and self._head_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(self._head_too_large_answer())

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._head_started = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            self._head_too_large = True
            raise HeadTooLarge  # stops the parser: the application never sees this request
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before:  # made just now: its task has not run yet (none for an upgrade)
            cycle.transport = _HeadWithBody(self.transport, cycle)  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which HeadTooLarge is made into."""
        if self._head_too_large:
            self._refuse(self._head_too_large_answer())
        else:
            super().send_400_response(msg)

    def _head_too_large_answer(self) -> bytes:
        return _refusal(
            431,
            "headers_too_large",
            f"The request line and headers exceed {self.max_header_bytes} bytes.",
        )

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True

    def _check_head_time(self) -> None:
        """One timer per connection, not one per request: when it fires it either cuts off a
        head that is late or sets itself again for when the current one would be."""
        now = self.loop.time()
        started = self._head_started
        if started is not None and now - started >= self.header_timeout_s:  # a head is late
            if not self.transport.is_closing():
                self._refuse(
                    _refusal(
                        408,
                        "header_timeout",
                        f"The request head did not arrive within {self.header_timeout_s:g} s.",
                    )
                )
            return
        delay = self.header_timeout_s if started is None else started + self.header_timeout_s - now
        self._head_check = self.loop.call_later(delay, self._check_head_time)

    def _refuse(self, answer: bytes) -> None:
        if self._head_check is not None:
            self._head_check.cancel()
        self.transport.write(answer)
        self.transport.close()
