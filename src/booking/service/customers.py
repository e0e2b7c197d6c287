"""The use cases of the Customer Management API, and a customer's appointments across
calendars. The API calls one of these per request; each opens its own unit of work. The rules
on the fields are `booking.service.customer_rules`.

Key fields are unique per organization: the database decides (`store.customers`), so
concurrent creates with one key value give one record.

Round trips: create and erase are BEGIN, one statement, COMMIT (plus the Idempotency-Key's claim
and store when one is sent); update adds the locking read of the record; reads are one
statement (the customer's appointments: two, the record's existence and the appointments).
"""

from __future__ import annotations

import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from booking.domain import CustomerFieldKind
from booking.service import rules
from booking.service.calendar_day import OnceOnly
from booking.service.catalog import Catalog, CustomerFieldTypeConfig, CustomersTable
from booking.service.commands import CreateCustomer, FindByKeyField, FindByRecordId, UpdateCustomer
from booking.service.customer_rules import (
    check_fields,
    check_value,
    display_name_of,
    display_text_of,
    duplicate_key,
    key_values,
    text_of,
    value_digest,
)
from booking.service.errors import DomainError, NotFound, RuleViolation, several
from booking.store import customers as store
from booking.store.appointments import AppointmentRecord
from booking.store.db import Database

MAX_APPOINTMENT_RANGE_DAYS = 366

Replayed = TypeVar("Replayed")


@dataclass(frozen=True, slots=True)
class CustomerField:
    field_type: CustomerFieldTypeConfig
    value: Any
    text: str
    display_text: str
    hash: str  # the digest of the value, base64


@dataclass(frozen=True, slots=True)
class CustomerRecordView:
    record_id: uuid.UUID
    data_table_id: uuid.UUID
    display_name: str
    date_created: datetime
    date_updated: datetime
    fields: list[CustomerField] = field(default_factory=list)  # in position order


def _view_of_row(table: CustomersTable, row: asyncpg.Record) -> CustomerRecordView:
    return _view(
        table,
        row["id"],
        row["display_name"] or "",
        row["fields"],
        row["date_created"],
        row["date_updated"],
    )


def _view(
    table: CustomersTable,
    record_id: uuid.UUID,
    display_name: str,
    values: Mapping[str, Any],
    date_created: datetime,
    date_updated: datetime,
) -> CustomerRecordView:
    return CustomerRecordView(
        record_id=record_id,
        data_table_id=table.id,
        display_name=display_name,
        date_created=date_created,
        date_updated=date_updated,
        fields=[
            CustomerField(
                field_type=f,
                value=values[str(f.id)],
                text=text_of(values[str(f.id)]),
                display_text=display_text_of(f, values[str(f.id)]),
                hash=b64encode(value_digest(values[str(f.id)])).decode(),
            )
            for f in table.field_types.values()
            if str(f.id) in values
        ],
    )


def _record_not_found() -> NotFound:
    return NotFound(
        "No such customer record.", code="customer_record_not_found", field="customerRecordId"
    )


def _raise_broken(broken: list[DomainError]) -> None:
    if broken:
        raise several(broken)


async def _write(
    db: Database,
    write: Callable[[asyncpg.Connection], Awaitable[CustomerRecordView]],
    once: OnceOnly[CustomerRecordView, Replayed] | None,
) -> CustomerRecordView | Replayed:
    """Run `write` in a transaction and commit; with `once`, claimed in it first (a retry
    answers what the first attempt answered) and the outcome stored in it."""
    async with db.transaction() as conn:
        if once is not None:
            replayed = await once.claim(conn)
            if replayed is not None:
                return replayed
        written = await write(conn)
        if once is not None:
            await once.store(conn, written)
        return written


async def create_customer(
    db: Database,
    catalog: Catalog,
    command: CreateCustomer,
    now: datetime,
    once: OnceOnly[CustomerRecordView, Replayed] | None = None,
) -> CustomerRecordView | Replayed:
    """Create the record, or raise every broken rule (`NotFound`, `RuleViolation`) or the key
    value another record holds (`Conflict`)."""
    table = catalog.customers
    broken: list[DomainError] = []
    values = check_fields(table, catalog.default_phone_region, command.fields, broken)
    _raise_broken(broken)
    display_name = display_name_of(table, values)
    keys = key_values(table, values)

    async def write(conn: asyncpg.Connection) -> CustomerRecordView:
        record_id = uuid.uuid4()
        taken = await store.insert_record(
            conn, catalog.organization_id, record_id, display_name, values, list(keys.items()), now
        )
        if taken:
            raise duplicate_key(table, taken)
        return _view(table, record_id, display_name, values, now, now)

    return await _write(db, write, once)


async def update_customer(
    db: Database,
    catalog: Catalog,
    command: UpdateCustomer,
    now: datetime,
    once: OnceOnly[CustomerRecordView, Replayed] | None = None,
) -> CustomerRecordView | Replayed:
    """Set the fields the command names; a required field cannot be cleared."""
    table = catalog.customers
    region = catalog.default_phone_region
    # The values alone first, so a bad request is refused before a connection is taken.
    broken: list[DomainError] = []
    check_fields(table, region, command.fields, broken, require=False)
    _raise_broken(broken)

    async def write(conn: asyncpg.Connection) -> CustomerRecordView:
        row = await store.record_by_id(
            conn, catalog.organization_id, command.record_id, for_update=True
        )
        if row is None:
            raise _record_not_found()
        before: dict[str, Any] = row["fields"]
        values = check_fields(table, region, command.fields, broken, current=before)
        _raise_broken(broken)
        old_keys, new_keys = key_values(table, before), key_values(table, values)
        changed = [
            i for i in old_keys.keys() | new_keys.keys() if old_keys.get(i) != new_keys.get(i)
        ]
        display_name = display_name_of(table, values)
        taken = await store.update_record(
            conn,
            catalog.organization_id,
            command.record_id,
            display_name,
            values,
            changed,
            [(i, new_keys[i]) for i in changed if i in new_keys],
            now,
        )
        if taken:
            raise duplicate_key(table, taken)
        return _view(table, command.record_id, display_name, values, row["date_created"], now)

    return await _write(db, write, once)


async def find_customer(
    db: Database, catalog: Catalog, query: FindByRecordId | FindByKeyField
) -> CustomerRecordView:
    """One record, by id or by the value of a key field; 404 when none matches."""
    table = catalog.customers
    if isinstance(query, FindByRecordId):
        return await get_customer(db, catalog, query.record_id)
    field_type = table.by_slug(query.field_slug)
    if field_type is None:
        raise NotFound(
            "No customer field type has this slug.",  # not echoed: it is the caller's input
            code="field_type_not_found",
            field="fieldSlug",
        )
    if not field_type.is_key:
        raise RuleViolation(
            f"Field '{field_type.name}' is not a key field; find records by a key field.",
            code="not_a_key_field",
            field="fieldSlug",
        )
    broken: list[DomainError] = []
    value = check_value(
        field_type, _typed(field_type, query.field_value), catalog.default_phone_region, broken
    )
    if broken:  # one value, one rule: named by the query's field
        raise RuleViolation(broken[0].detail, code=broken[0].code, field="fieldValue")
    async with db.read() as conn:
        row = await store.record_by_key(
            conn, catalog.organization_id, field_type.id, value_digest(value)
        )
    if row is None:
        raise NotFound("No customer record has this key value.", code="customer_record_not_found")
    return _view_of_row(table, row)


def _typed(field_type: CustomerFieldTypeConfig, text: str) -> Any:
    """The query's fieldValue (text on the wire) as a value of the field's kind."""
    if field_type.kind is CustomerFieldKind.NUMBER:
        try:
            number = float(text)
        except ValueError:
            return text  # refused by the kind's check
        return int(number) if number.is_integer() else number
    return text


async def get_customer(db: Database, catalog: Catalog, record_id: uuid.UUID) -> CustomerRecordView:
    async with db.read() as conn:
        row = await store.record_by_id(conn, catalog.organization_id, record_id)
    if row is None:
        raise _record_not_found()
    return _view_of_row(catalog.customers, row)


async def erase_customer(
    db: Database, catalog: Catalog, record_id: uuid.UUID, now: datetime
) -> None:
    """Honour an erasure request: the record's fields and display name go, and so do the
    contact phone and email of its appointments; the appointments stay (statistics), and the
    record answers 404 from now on."""
    async with db.transaction() as conn:
        if not await store.erase_record(conn, catalog.organization_id, record_id, now):
            raise _record_not_found()


async def customer_appointments(
    db: Database, catalog: Catalog, record_id: uuid.UUID, first_date: date, last_date: date
) -> list[AppointmentRecord]:
    """The record's appointments in every calendar between the dates (inclusive), by start."""
    rules.check_date_range(first_date, last_date, MAX_APPOINTMENT_RANGE_DAYS)
    async with db.read() as conn:
        if not await store.record_exists(conn, catalog.organization_id, record_id):
            raise _record_not_found()
        return await store.appointments_of_record(
            conn, catalog.organization_id, record_id, first_date, last_date
        )
