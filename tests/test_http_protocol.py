"""The HTTP protocol `booking-api serve` runs writes each answer's head together with its body:
one send per answer, where uvicorn's own protocol makes two. Driven here through a transport
that records what is written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from booking.api.http_protocol import BoundedHttpToolsProtocol

Scope = dict[str, Any]


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answer(scope: Scope, receive: Any, send: Any) -> None:
    """Reads the body, then answers 201 with a JSON body, or (`/stream`) in two chunks."""
    await receive()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    body = b'{"booked": true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"16")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def connected() -> tuple[BoundedHttpToolsProtocol, RecordingTransport]:
    config = Config(app=answer, lifespan="off", log_level="warning")
    config.load()
    protocol = BoundedHttpToolsProtocol(config, ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def let_the_application_run() -> None:
    for _ in range(50):  # its task runs on this loop
        await asyncio.sleep(0)


async def served(request: bytes) -> RecordingTransport:
    protocol, transport = connected()
    protocol.data_received(request)
    await let_the_application_run()
    protocol.connection_lost(None)
    return transport


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_an_answer_is_written_in_one_send_head_and_body_together(method: str) -> None:
    request = f"{method} /book HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{{}}".encode()
    transport = await served(request)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert body == b'{"booked": true}'


async def test_the_answer_to_head_is_its_head_sent_when_the_answer_completes() -> None:
    transport = await served(b"HEAD /book HTTP/1.1\r\nhost: t\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")


async def test_a_streamed_answer_sends_its_head_with_the_first_chunk() -> None:
    transport = await served(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n4\r\none,\r\n")
    assert transport.writes[1] == b"3\r\ntwo\r\n0\r\n\r\n"


async def test_100_continue_goes_out_at_once_before_the_answer() -> None:
    head = b"POST /book HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
    protocol, transport = connected()
    protocol.data_received(head)
    await let_the_application_run()
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]  # the body is awaited
    protocol.data_received(b"{}")
    await let_the_application_run()
    protocol.connection_lost(None)
    assert len(transport.writes) == 2
    assert transport.writes[1].startswith(b"HTTP/1.1 201 Created\r\n")
    assert transport.writes[1].endswith(b'{"booked": true}')
