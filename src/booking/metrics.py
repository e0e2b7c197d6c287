"""Every Prometheus metric of the server, defined once (`prometheus-client`).

The HTTP layer records requests and booking outcomes (`api/metrics.py`); the database gate
records its connection places (`store/db.py`). With several worker processes, the server sets
PROMETHEUS_MULTIPROC_DIR before they start (see `multiprocess_dir`), each process writes its
values to files there, and a scrape of any worker adds them all up.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# A `_created` series beside every counter and histogram only lengthens the page.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Bookings take milliseconds and the pool wait is bounded by DATABASE_POOL_TIMEOUT_S (5 s).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "booking_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "booking_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=_SECONDS,
)

# The database gate: at most DATABASE_POOL_SIZE connections in use, the rest wait in line.
# "livesum": the processes alive now, added up.
DB_CONNECTIONS_IN_USE = Gauge(
    "booking_db_connections_in_use",
    "Database connections held by requests now.",
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_WAITING = Gauge(
    "booking_db_connections_waiting",
    "Requests waiting in line for a database connection now.",
    multiprocess_mode="livesum",
)
DB_CONNECTION_WAIT = Histogram(
    "booking_db_connection_wait_seconds",
    "Time a request waited for a database connection (including waits that timed out).",
    buckets=_SECONDS,
)

BOOKINGS = Counter("booking_bookings", "Appointments booked (201, replays not counted).")
BOOKING_CONFLICTS = Counter(
    "booking_booking_conflicts", "Bookings refused because the slot was taken (409)."
)
IDEMPOTENT_REPLAYS = Counter(
    "booking_idempotent_replays", "Stored answers replayed for a repeated Idempotency-Key."
)
RATE_LIMITED = Counter("booking_rate_limited", "Requests refused by a rate limit (429).")


def exposition() -> bytes:
    """The Prometheus text of this process, or of every process when several share a
    PROMETHEUS_MULTIPROC_DIR."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    _forget_dead_processes(Path(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def _forget_dead_processes(directory: Path) -> None:
    """A worker killed without its shutdown (SIGKILL, OOM) leaves its gauges behind: drop the
    gauge files of processes that no longer exist, so in-use and waiting stay true."""
    for path in directory.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def process_stopping() -> None:
    """Called by a worker's shutdown: its live gauges leave the sum."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[None]:
    """For the server's own process, before it starts workers. With one worker, metrics live in
    its memory. With several, they go to PROMETHEUS_MULTIPROC_DIR: the one given (emptied of a
    previous run's files, as prometheus-client requires), else a fresh directory removed at the
    end."""
    if workers <= 1 and not os.environ.get(MULTIPROC_ENV):
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    directory = tempfile.mkdtemp(prefix="booking-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


# Outbound webhooks. The queue's gauges are the same for every process (the outbox is one
# table): "livemax" shows it once.
WEBHOOK_ATTEMPTS = Counter(
    "booking_webhook_attempts",
    "Webhook delivery attempts, by hook and outcome (delivered, retry, failed, gone).",
    ["hook", "outcome"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "booking_webhook_attempt_duration_seconds",
    "Time from sending a webhook call to its answer (or its error).",
    buckets=_SECONDS,
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "booking_webhook_queue_depth",
    "Webhook events not delivered yet (due or waiting for a retry).",
    multiprocess_mode="livemax",
)
WEBHOOK_QUEUE_OLDEST_AGE = Gauge(
    "booking_webhook_queue_oldest_age_seconds",
    "Age of the oldest webhook event not delivered yet (0: none).",
    multiprocess_mode="livemax",
)
