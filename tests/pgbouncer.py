"""PgBouncer as people install it (Debian's `pgbouncer` package, 1.18: no
`max_prepared_statements`), in transaction mode on a free loopback port in front of an
embedded PostgreSQL, with a generated password in its own auth file. `.ci/run` installs the
package when it is missing."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# The settings that keep an outage short (docs/scaling.md, measured by bench/pgbouncer_outage.py):
# retry the server's login every second, not every 15, and answer a query that waits for a
# server connection with an error after 2 s, not 120.
SHORT_OUTAGE = {"server_login_retry": "1", "query_wait_timeout": "2"}


@dataclass
class PgBouncer:
    process: subprocess.Popen[bytes]
    port: int
    password: str
    log: Path

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pgbouncer_binary() -> str:
    """The installed pgbouncer, or a skip saying how to get it (`.ci/run` installs it)."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    return found


@contextmanager
def run_pgbouncer(socket_dir: str, **settings: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the PostgreSQL listening in `socket_dir`,
    with `settings` on top of the packaged defaults; stopped at the end."""
    binary = pgbouncer_binary()
    folder = Path(tempfile.mkdtemp(prefix="pgb", dir="/tmp"))
    port, password = _free_port(), secrets.token_hex(16)
    (folder / "users.txt").write_text(f'"postgres" "{password}"\n')
    log = folder / "pgbouncer.log"
    log.touch()
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": str(folder / "users.txt"),
        "pool_mode": "transaction",
        "max_client_conn": "500",
        # Fewer server connections than the servers have pooled: transactions of different
        # clients share server connections, as behind any pooler worth having.
        "default_pool_size": "4",
        "logfile": str(log),
        **settings,
    }
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={socket_dir} port=5432\n\n[pgbouncer]\n"
        + "".join(f"{name} = {value}\n" for name, value in options.items())
    )
    # PgBouncer refuses to run as root; it then runs as the owner of the database's socket
    # folder (the embedded server's user), which may reach that socket.
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        for child in folder.iterdir():
            os.chown(child, owner.pw_uid, owner.pw_gid)
        command[1:1] = ["-u", owner.pw_name]
    with log.open("ab") as output:  # what it says before it opens its log file too
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(process, port, password, log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield bouncer
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
