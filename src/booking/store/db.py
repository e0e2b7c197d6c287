"""The engine and the one way to open a transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from booking.settings import Settings


def to_async_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs people paste and use the asyncpg driver."""
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    return create_async_engine(
        to_async_url(url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_s,
        # No pre-ping (it costs three round trips per checkout). When the database restarts, the
        # first statement on a dead connection fails (503, Retry-After) and SQLAlchemy then
        # invalidates the whole pool, so the next requests get fresh connections.
        pool_pre_ping=False,
        hide_parameters=True,  # bound values (phones, emails) never reach error messages or logs
        connect_args={
            "timeout": settings.database_connect_timeout_s,
            "command_timeout": settings.database_statement_timeout_ms / 1000 + 1
            if settings.database_statement_timeout_ms
            else None,
            "server_settings": {
                "statement_timeout": str(settings.database_statement_timeout_ms),
                "application_name": "booking-api",
            },
        },
    )
