"""Personal data (phone numbers, emails) never reaches the logs, on success or failure."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.builders import World
from tests.conftest import TODAY


async def test_booking_logs_neither_phone_number_nor_email(
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="booking")

    bookings = [
        (570, "+1 202-555-0143", "ada@example.com"),
        (600, "(202) 555-0143", "Ada@Example.COM"),
    ]
    for start, phone, email in bookings:
        response = await client.post(
            world.appointments_path(TODAY),
            json=world.body(start, contactPhoneNumber=phone, contactEmail=email),
            headers=auth,
        )
        assert response.status_code == 201, response.text
    refused = await client.post(  # an error path, too: the slot is taken
        world.appointments_path(TODAY),
        json=world.body(570, contactPhoneNumber="+1 202-555-0143", contactEmail="ada@example.com"),
        headers=auth,
    )
    assert refused.status_code >= 400

    access = [r for r in caplog.records if r.name == "booking.access"]
    assert len(access) == 3, [r.__dict__ for r in caplog.records]
    forbidden = ("+12025550143", "2025550143", "555-0143", "5550143", "ada@example.com")
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), *(str(value) for value in record.__dict__.values())]
        ).lower()
        for secret in forbidden:
            assert secret.lower() not in text, (secret, record.__dict__)


async def test_a_database_error_quoting_the_row_logs_neither_phone_nor_email(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL quotes the failing row in constraint errors (DETAIL: Failing row contains
    ...): the log says which error, never the row."""
    from tests.kit import inject_fault

    async def insert_incomplete_row(conn: Any, sql: str, args: tuple[Any, ...]) -> int:
        await conn.execute(  # organization_id NOT NULL: the error's DETAIL lists every value
            "INSERT INTO appointment (id, contact_phone, contact_email) VALUES ($1, $2, $3)",
            args[0],
            "+12025550143",
            "ada@example.com",
        )
        return 1

    caplog.set_level(logging.DEBUG)
    async with inject_fault(app, "INSERT INTO appointment", insert_incomplete_row):
        response = await client.post(
            world.appointments_path(TODAY),
            json=world.body(
                570, contactPhoneNumber="+1 202-555-0143", contactEmail="ada@example.com"
            ),
            headers=auth,
        )
    assert response.status_code == 500
    assert "5550143" not in response.text
    assert "ada@" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failure is logged"
    assert any("NotNullViolation" in r.getMessage() for r in errors)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert "5550143" not in text, text
        assert "ada@example.com" not in text, text
