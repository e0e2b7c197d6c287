"""`make run` (`booking-api serve` on its embedded PostgreSQL) stops cleanly whichever way it
is asked: SIGTERM (a process manager, `kill`) like SIGINT (Ctrl-C) stops the server and then the
embedded database, and exits 0."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from booking.store.embedded import data_folder
from tests.serving import serve


def postgres_processes_of(pgdata: Path) -> list[int]:
    """The pids of the PostgreSQL processes serving `pgdata` (the postmaster names its data
    folder on its command line; its children die with it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if any(b"postgres" in part for part in command[:1]) and str(pgdata).encode() in command:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_its_embedded_postgres_and_exits_0_on(stop: signal.Signals) -> None:
    # Not under pytest's tmp_path: every pytest run on the machine resets its root folder to
    # mode 700, which would lock out the `pgserver` user the embedded server runs as (as root).
    with tempfile.TemporaryDirectory(prefix="booking-stop-") as data_dir:
        stops_cleanly(stop, Path(data_dir))


def stops_cleanly(stop: signal.Signals, data_dir: Path) -> None:
    pgdata = data_folder(data_dir)
    # An empty DATABASE_URL: no database configured, so `serve` starts the embedded one.
    with serve("", data_dir) as server:
        assert postgres_processes_of(pgdata), "the embedded PostgreSQL is not running"
        server.process.send_signal(stop)
        assert server.process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while postgres_processes_of(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    outlived = postgres_processes_of(pgdata)
    for pid in outlived:  # a failing run leaves no server behind
        os.kill(pid, signal.SIGTERM)
    assert outlived == [], "the embedded PostgreSQL outlived the server"
