"""Greedy and slow clients against a real `booking-api serve` process on loopback: oversized
heads, heads and bodies sent too slowly, too many connections, untrusted X-Forwarded-For, and
the grace given to requests in flight at shutdown."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET, _free_port

ROOT = Path(__file__).resolve().parent.parent
BOOKING_API = str(Path(sys.executable).parent / "booking-api")

BOUNDS = {
    "MAX_HEADER_BYTES": "8192",
    "HEADER_TIMEOUT_S": "1",
    "BODY_TIMEOUT_S": "1",
    "MAX_CONNECTIONS": "8",
    "RATE_LIMIT_CLIENT_ADDRESS": "100000/second",
}


class Server:
    """A `booking-api serve --no-demo` process on the test database, stopped by stop()."""

    def __init__(self, database_url: str, data_dir: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [BOOKING_API, "serve", "--no-demo"],
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "JWT_DEV_SECRET": TEST_SECRET,
                "DATA_DIR": str(data_dir),
                "LOG_LEVEL": "WARNING",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                **env,
            },
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("booking-api serve did not start")
            time.sleep(0.1)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


ServerFactory = Callable[[dict[str, str]], Server]


@pytest.fixture(scope="module")
def start_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    started: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = Server(database_url, tmp_path_factory.mktemp("serve"), env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def bounded(start_server: ServerFactory) -> Server:
    return start_server(BOUNDS)


def read_answer(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (or the timeout)."""
    sock.settimeout(timeout_s)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def drip(sock: socket.socket) -> None:
    """A header value a byte every 0.2 s (4 s in all if nobody stops it), until the server
    answers (then stop sending, so that its answer is not lost to a reset)."""
    for _ in range(20):
        if select.select([sock], [], [], 0.2)[0]:
            return
        sock.sendall(b"a")


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_head_over_max_header_bytes_gets_431(bounded: Server) -> None:
    response = httpx.get(bounded.url + "/healthz", headers={"X-Padding": "a" * 12_000})
    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "headers_too_large"
    assert httpx.get(bounded.url + "/healthz", headers={"X-Padding": "a" * 6_000}).is_success


def test_a_16_mb_authorization_header_is_refused_before_it_is_read(bounded: Server) -> None:
    """The server stops reading at the limit: the sender is refused (431, or reset while it is
    still sending) at once, and other callers are not slowed down."""
    path = f"/{uuid.uuid4()}/services"
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".encode()
    started = time.perf_counter()
    answer = b""
    with bounded.connect() as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + b"a" * (16 * 1024 * 1024) + b"\r\n\r\n")
        answer = read_answer(sock)
    elapsed = time.perf_counter() - started
    assert status_of(answer) in (0, 431), answer[:200]  # never the app's 401
    assert b"token" not in answer
    assert elapsed < 2.0
    started = time.perf_counter()
    assert httpx.get(bounded.url + "/healthz").is_success
    assert time.perf_counter() - started < 0.5


def test_a_head_sent_too_slowly_gets_408_and_the_connection_closed(bounded: Server) -> None:
    started = time.perf_counter()
    with bounded.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        drip(sock)
        answer = read_answer(sock, timeout_s=1.0)
    assert status_of(answer) == 408, answer[:200]
    assert b"header_timeout" in answer
    assert time.perf_counter() - started < 2.5


def test_the_next_head_on_a_kept_alive_connection_is_timed_too(bounded: Server) -> None:
    with bounded.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(2)
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # the whole first answer, head and body
            first += sock.recv(65536)
        assert status_of(first) == 200
        started = time.perf_counter()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # within the keep-alive timeout
        drip(sock)
        answer = read_answer(sock, timeout_s=1.0)
    assert status_of(answer) == 408, answer[:200]
    assert time.perf_counter() - started < 2.5


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    bounded: Server,
) -> None:
    started = time.perf_counter()
    with bounded.connect() as sock:
        answer = read_answer(sock, timeout_s=4.0)
    assert status_of(answer) == 408
    assert time.perf_counter() - started < 2.5


def test_a_body_sent_too_slowly_gets_408_with_its_request_id(bounded: Server) -> None:
    path = f"/{uuid.uuid4()}/calendars/{uuid.uuid4()}/2026-12-01/0/appointments"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\nX-Request-ID: slow-body-1\r\n\r\n"
    )
    started = time.perf_counter()
    with bounded.connect() as sock:
        sock.sendall(head.encode() + b'{"startTime": ')
        answer = read_answer(sock, timeout_s=4.0)
    assert status_of(answer) == 408, answer[:300]
    assert b"x-request-id: slow-body-1" in answer.lower()
    assert b"body_timeout" in answer
    assert time.perf_counter() - started < 2.5


def test_an_answer_given_before_the_body_was_read_closes_the_connection(bounded: Server) -> None:
    """Otherwise the client could trickle the rest of the body on an idle-looking connection."""
    with bounded.connect() as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.perf_counter()
        answer = read_answer(sock, timeout_s=4.0)  # returns once the server closes
    assert status_of(answer) == 405  # answered without reading the body
    assert time.perf_counter() - started < 1.0
    assert b"connection: close" in answer.lower()


def test_connections_beyond_max_connections_are_refused_at_once(bounded: Server) -> None:
    held = [bounded.connect() for _ in range(int(BOUNDS["MAX_CONNECTIONS"]))]
    try:
        time.sleep(0.1)
        started = time.perf_counter()
        with bounded.connect() as extra:
            answer = read_answer(extra, timeout_s=0.9)
        assert status_of(answer) == 503, answer[:200]
        assert b"retry-after: 1" in answer.lower()
        assert time.perf_counter() - started < 0.5
    finally:
        for sock in held:
            sock.close()
    # The closed connections' places are free again once the server has seen them close.
    deadline = time.monotonic() + 5
    while httpx.get(bounded.url + "/healthz").status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(bounded.url + "/healthz").is_success


# --- trusted proxies ------------------------------------------------------------------------------


def statuses_claiming_other_clients(server: Server, count: int) -> list[int]:
    """GET /healthz `count` times, each claiming another client in X-Forwarded-For."""
    return [
        httpx.get(
            server.url + "/healthz", headers={"X-Forwarded-For": f"198.51.100.{i}"}
        ).status_code
        for i in range(count)
    ]


def test_x_forwarded_for_is_not_believed_by_default(start_server: ServerFactory) -> None:
    """Every request is charged to the real peer (127.0.0.1), whatever it claims."""
    server = start_server({"RATE_LIMIT_CLIENT_ADDRESS": "3/minute"})
    statuses = statuses_claiming_other_clients(server, 5)
    assert statuses[-2:] == [429, 429]


def test_x_forwarded_for_is_believed_from_the_proxies_named(start_server: ServerFactory) -> None:
    server = start_server(
        {"RATE_LIMIT_CLIENT_ADDRESS": "3/minute", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    )
    statuses = statuses_claiming_other_clients(server, 5)
    assert statuses == [200] * 5  # five clients, one request each


# --- shutdown ------------------------------------------------------------------------------------


def test_requests_in_flight_get_shutdown_grace_s_then_the_process_exits(
    start_server: ServerFactory,
) -> None:
    server = start_server({"SHUTDOWN_GRACE_S": "1", "BODY_TIMEOUT_S": "60"})
    path = f"/{uuid.uuid4()}/calendars/{uuid.uuid4()}/2026-12-01/0/appointments"
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with server.connect() as sock:
        sock.sendall(head.encode() + b"Content-Length: 100\r\n\r\n{")  # in flight for 60 s
        time.sleep(0.3)
        started = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=15)
    assert time.perf_counter() - started < 5
