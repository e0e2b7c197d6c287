"""Every statement of customer records. The writes are data-modifying CTEs written once as SQL
for the asyncpg connection; a customer's appointments are read with the appointment SELECT of
`store.appointments`, as `AppointmentRecord`s.

A record's field values live in its `fields` jsonb; the value of each key field also has a row
in `customer_key` (field type, digest of the value), whose primary key makes key values unique
per organization and makes finding a record by key field one index lookup. Each write is one
statement (data-modifying CTEs), so a write use case is BEGIN, the statement, COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam

from booking.store.appointments import AppointmentRecord, record_from_row, select_appointments
from booking.store.models import Appointment
from booking.store.sql import compiled

_RECORD_COLUMNS = "r.id, r.display_name, r.fields, r.date_created, r.date_updated"

# Key rows go in with ON CONFLICT DO NOTHING: a key value another record holds (committed, or
# committed meanwhile by a concurrent create, which this insert waits for) is not inserted, and
# the field types returned say which ones were. No unique-violation error is raised, so none
# can carry the value (PostgreSQL quotes it in the error's DETAIL).
_INSERT_KEYS = """
    INSERT INTO customer_key (field_type_id, value_digest, record_id)
    SELECT k.field_type_id, k.value_digest, $1
    FROM unnest($6::uuid[], $7::bytea[]) AS k(field_type_id, value_digest)
    ON CONFLICT DO NOTHING
    RETURNING field_type_id
"""

_CREATE = f"""
    WITH record AS (
        INSERT INTO customer_record
            (id, organization_id, display_name, fields, date_created, date_updated)
        VALUES ($1, $2, $3, $4, $5, $5)
    ), keys AS ({_INSERT_KEYS})
    SELECT coalesce(array_agg(field_type_id), '{{}}') FROM keys
"""  # noqa: S608 (the pieces are constants)

_UPDATE = f"""
    WITH record AS (
        UPDATE customer_record SET display_name = $3, fields = $4, date_updated = $5
        WHERE id = $1 AND organization_id = $2
    ), old_keys AS (
        DELETE FROM customer_key WHERE record_id = $1 AND field_type_id = ANY($8::uuid[])
    ), keys AS ({_INSERT_KEYS})
    SELECT coalesce(array_agg(field_type_id), '{{}}') FROM keys
"""  # noqa: S608 (the pieces are constants)

_BY_ID = f"""
    SELECT {_RECORD_COLUMNS} FROM customer_record r
    WHERE r.id = $1 AND r.organization_id = $2 AND r.erased_at IS NULL
"""  # noqa: S608 (the pieces are constants)

_BY_ID_FOR_UPDATE = _BY_ID + " FOR UPDATE"

_BY_KEY = f"""
    SELECT {_RECORD_COLUMNS}
    FROM customer_key k JOIN customer_record r ON r.id = k.record_id
    WHERE k.field_type_id = $1 AND k.value_digest = $2
      AND r.organization_id = $3 AND r.erased_at IS NULL
"""  # noqa: S608 (the pieces are constants)

# The appointments keep their rows and statistics; what identifies the person goes.
_ERASE = """
    WITH record AS (
        UPDATE customer_record
        SET display_name = NULL, fields = '{}', erased_at = $3, date_updated = $3
        WHERE id = $1 AND organization_id = $2 AND erased_at IS NULL
        RETURNING id
    ), keys AS (
        DELETE FROM customer_key WHERE record_id IN (SELECT id FROM record)
    ), contacts AS (
        UPDATE appointment SET contact_phone = NULL, contact_email = NULL
        WHERE customer_record_id IN (SELECT id FROM record) AND organization_id = $2
    )
    SELECT count(*) FROM record
"""

_EXISTS = """
    SELECT true FROM customer_record
    WHERE id = $1 AND organization_id = $2 AND erased_at IS NULL
"""

_APPOINTMENTS = compiled(
    select_appointments()
    .where(
        Appointment.customer_record_id == bindparam("customer_record_id"),
        Appointment.organization_id == bindparam("organization_id"),
        Appointment.on_date.between(bindparam("first_date"), bindparam("last_date")),
    )
    .order_by(Appointment.starts_at, Appointment.id),
    "customer_record_id",
    "organization_id",
    "first_date",
    "last_date",
)


def _keys_args(keys: Sequence[tuple[uuid.UUID, bytes]]) -> tuple[list[uuid.UUID], list[bytes]]:
    return [field_type_id for field_type_id, _ in keys], [digest for _, digest in keys]


async def insert_record(
    conn: asyncpg.Connection,
    organization_id: uuid.UUID,
    record_id: uuid.UUID,
    display_name: str,
    fields: dict[str, Any],
    keys: Sequence[tuple[uuid.UUID, bytes]],
    now: datetime,
) -> set[uuid.UUID]:
    """Insert the record and its key rows; answer the key field types whose value another
    record already holds (then the caller must roll back)."""
    inserted: list[uuid.UUID] = await conn.fetchval(
        _CREATE,
        record_id,
        organization_id,
        display_name,
        fields,
        now,
        *_keys_args(keys),
    )
    return {field_type_id for field_type_id, _ in keys} - set(inserted)


async def update_record(
    conn: asyncpg.Connection,
    organization_id: uuid.UUID,
    record_id: uuid.UUID,
    display_name: str,
    fields: dict[str, Any],
    changed_key_fields: Sequence[uuid.UUID],
    new_keys: Sequence[tuple[uuid.UUID, bytes]],
    now: datetime,
) -> set[uuid.UUID]:
    """Write the record's new values; the key rows of `changed_key_fields` are replaced by
    `new_keys`. Answers the key field types whose new value another record holds."""
    inserted: list[uuid.UUID] = await conn.fetchval(
        _UPDATE,
        record_id,
        organization_id,
        display_name,
        fields,
        now,
        *_keys_args(new_keys),
        list(changed_key_fields),
    )
    return {field_type_id for field_type_id, _ in new_keys} - set(inserted)


async def record_by_id(
    conn: asyncpg.Connection,
    organization_id: uuid.UUID,
    record_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> asyncpg.Record | None:
    """The record (not erased) of this organization; `for_update` locks it until commit."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _BY_ID_FOR_UPDATE if for_update else _BY_ID, record_id, organization_id
    )
    return row


async def record_by_key(
    conn: asyncpg.Connection, organization_id: uuid.UUID, field_type_id: uuid.UUID, digest: bytes
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        _BY_KEY, field_type_id, digest, organization_id
    )
    return row


async def erase_record(
    conn: asyncpg.Connection, organization_id: uuid.UUID, record_id: uuid.UUID, now: datetime
) -> bool:
    """Clear the record's personal data and its appointments' contact phone and email.
    False: no such record (or erased already)."""
    erased: int = await conn.fetchval(_ERASE, record_id, organization_id, now)
    return erased == 1


async def record_exists(
    conn: asyncpg.Connection, organization_id: uuid.UUID, record_id: uuid.UUID
) -> bool:
    return bool(await conn.fetchval(_EXISTS, record_id, organization_id))


async def appointments_of_record(
    conn: asyncpg.Connection,
    organization_id: uuid.UUID,
    record_id: uuid.UUID,
    first_date: date,
    last_date: date,
) -> list[AppointmentRecord]:
    """The record's appointments in every calendar from `first_date` to `last_date`, by start
    (the appointment's index on customer_record_id finds them)."""
    rows = await conn.fetch(_APPOINTMENTS.sql, record_id, organization_id, first_date, last_date)
    return [record_from_row(row) for row in rows]
