"""A real HTTP receiver of webhooks for the tests: a threading HTTP server on 127.0.0.1 that
verifies every call with independent code (the `standardwebhooks` reference library, and the
original's HMAC written from its documentation) and records what it got."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    standard_signature_valid: bool
    original_hmac_valid: bool | None  # None: no Authorization header


@dataclass
class Receiver:
    secret: str
    port: int
    host: str = "127.0.0.1"  # any of 127.0.0.0/8: the tests tell receivers apart by address
    tls: ssl.SSLContext | None = None  # https with this server context
    # The status to answer (and extra headers) for each call; default 204.
    answer: Callable[[Call], tuple[int, dict[str, str]]] = lambda call: (204, {})
    delay_s: float = 0.0
    # The answer's body (JSON) for each call; default none.
    body_for: Callable[[Call], bytes] = lambda call: b""
    calls: list[Call] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlapping: list[str] = field(default_factory=list)  # webhook-ids received twice at once
    arrivals: list[str] = field(default_factory=list)  # webhook-ids as calls came in
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def verify(self, raw: bytes, headers: dict[str, str]) -> Call:
        try:
            Webhook(self.secret).verify(raw, headers)
            standard = True
        except Exception:
            standard = False
        authorization = headers.get("authorization")
        original = None
        if authorization is not None:
            mac = hmac.new(self.secret.encode("utf-8"), raw, hashlib.sha256).digest()
            original = authorization == "HMAC " + base64.b64encode(mac).decode()
        return Call("", headers, json.loads(raw), standard, original)

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Call]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.delivered()) >= count:
                    return self.delivered()
            time.sleep(0.05)
        raise AssertionError(f"{len(self.delivered())} of {count} deliveries arrived")

    def wait_for_calls(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.calls) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.calls)} of {count} calls arrived")
            time.sleep(0.02)

    def wait_for_arrivals(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.arrivals_count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.arrivals_count()} of {count} calls arrived")
            time.sleep(0.02)

    def arrivals_count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def wait_for_second_calls(self, ids: set[str], timeout_s: float = 60) -> None:
        """Until every webhook-id of `ids` is in `calls` twice at least: answered twice, not
        only arrived (a call is recorded `delay_s` after it came in)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                answered = [c.headers.get("webhook-id", "") for c in self.calls]
            missing = {i for i in ids if answered.count(i) < 2}
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(missing)} of {len(ids)} calls did not come again")
            time.sleep(0.05)

    def wait_for_cases(self, count: int, timeout_s: float = 60) -> list[Call]:
        """Until `count` different cases have one delivery at least."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                delivered = self.delivered()
            if len({c.body["caseId"] for c in delivered}) >= count:
                return delivered
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} cases delivered")

    def delivered(self) -> list[Call]:
        return [c for c in self.calls if 200 <= self.answer_of(c) < 300]

    def answer_of(self, call: Call) -> int:
        return int(call.headers.get("x-test-answered", "0"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            call = receiver.verify(raw, headers)
            call.path = self.path
            webhook_id = headers.get("webhook-id", "")
            with receiver.lock:
                receiver.arrivals.append(webhook_id)
                if receiver.in_flight.get(webhook_id):
                    receiver.overlapping.append(webhook_id)
                receiver.in_flight[webhook_id] = receiver.in_flight.get(webhook_id, 0) + 1
            try:
                time.sleep(receiver.delay_s)
                status, extra = receiver.answer(call)
                content = receiver.body_for(call)
                call.headers["x-test-answered"] = str(status)
                with receiver.lock:
                    receiver.calls.append(call)
            finally:
                with receiver.lock:
                    receiver.in_flight[webhook_id] -= 1
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            try:
                self.end_headers()
                self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender was killed or gave up waiting: what it sent is recorded

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((receiver.host, receiver.port), Handler)
    if receiver.tls is not None:
        server.socket = receiver.tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
