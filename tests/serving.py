"""`booking-api serve` as production runs it: a real process on the test database, on a free
port, for the tests that need the whole server (signals, worker processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ROOT, TEST_SECRET


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(database_url: str, data_dir: Path, **env: str) -> Iterator[Server]:
    """Start `booking-api serve --no-demo` with `env` on top of the test settings; wait until
    it answers; at the end, stop it if the test has not."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "booking.cli", "serve", "--no-demo"],
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "JWT_DEV_SECRET": TEST_SECRET,
            "CONFIG_CACHE_TTL_S": "0",
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "WARNING",
            "PORT": str(port),
            # Tests that flood on purpose set their own limits.
            "RATE_LIMIT_APPLICATION": "100000/second",
            "RATE_LIMIT_CLIENT_ADDRESS": "100000/second",
            **env,
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
