"""Customer records: the rules on their fields and the use cases of the Customer Management API.

Values are checked with the booking's rules (a field type's kind; phones parsed with the
organization's default region and kept in E.164; emails normalized), every broken rule reported
together. Key fields are unique per organization: the database decides (`store.customers`), so
concurrent creates with one key value give one record. No field value is ever written into an
error's text: errors name the field type, never what was sent.

Round trips: create and erase are BEGIN, one statement, COMMIT (plus the Idempotency-Key's claim
and store when one is sent); update adds the locking read of the record; reads are one
statement.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import phonenumbers

from booking.service import idempotency
from booking.service.appointments import AppointmentRecord, record_from_row
from booking.service.booking import _check_field_value, normalize_email, normalize_phone
from booking.service.catalog import (
    Catalog,
    CustomerFieldTypeConfig,
    CustomersTable,
    FieldTypeConfig,
)
from booking.service.errors import Conflict, DomainError, NotFound, RuleViolation, raise_all
from booking.service.idempotency import StoredResponse
from booking.store import customers as store
from booking.store.db import Database

MAX_APPOINTMENT_RANGE_DAYS = 366

# The original's names of the kinds (a record's `dataType`).
DATA_TYPES = {
    "text": "Text",
    "number": "Number",
    "boolean": "Boolean",
    "date": "Date",
    "choice": "Choice",
    "phone": "Phone",
    "email": "Email",
}
KEY_KINDS = ("text", "number", "phone", "email")

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z0-9]+(?:-[a-z0-9]+)*)\s*\}\}")


# --- the rules ----------------------------------------------------------------------------------


def _path(field_type_id: uuid.UUID) -> str:
    return f"fields.{field_type_id}"


def check_value(field_type: CustomerFieldTypeConfig, value: Any, region: str) -> Any:
    """The value as stored: of the field type's kind, phones in E.164, emails normalized,
    whole numbers as integers. Raises RuleViolation naming the field type (never the value)."""
    if field_type.kind == "phone":
        try:
            if not isinstance(value, str):
                raise RuleViolation("not text")
            return normalize_phone(value, region)
        except RuleViolation:
            raise RuleViolation(
                f"Field '{field_type.name}' must be a valid phone number.",
                code="invalid_phone_number",
                field=_path(field_type.id),
            ) from None
    if field_type.kind == "email":
        try:
            if not isinstance(value, str):
                raise RuleViolation("not text")
            return normalize_email(value)
        except RuleViolation:
            raise RuleViolation(  # not the validator's message: it may quote the address
                f"Field '{field_type.name}' must be a valid email address.",
                code="invalid_email",
                field=_path(field_type.id),
            ) from None
    checked = _check_field_value(
        FieldTypeConfig(field_type.id, field_type.name, field_type.kind, field_type.options, False),
        value,
    )
    if isinstance(checked, float) and math.isfinite(checked) and checked.is_integer():
        return int(checked)  # 7.0 and 7 are one key value
    return checked


def value_digest(value: Any) -> bytes:
    """16 bytes of the stored value: the key rows' lookup value and the record's `hash`."""
    return hashlib.blake2b(orjson.dumps(value), digest_size=16).digest()


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def display_text_of(field_type: CustomerFieldTypeConfig, value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if field_type.kind == "phone":
        number = phonenumbers.parse(value)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return str(value)


def display_name_of(table: CustomersTable, values: Mapping[str, Any]) -> str:
    """The template with each {{slug}} replaced by that field's text (nothing when unset);
    without a template, the text fields in position order. Spaces collapsed."""
    by_slug = {f.slug: f for f in table.field_types.values()}

    def text(field_type: CustomerFieldTypeConfig | None) -> str:
        if field_type is None or str(field_type.id) not in values:
            return ""
        return display_text_of(field_type, values[str(field_type.id)])

    if table.display_name_template is None:
        name = " ".join(text(f) for f in table.field_types.values() if f.kind == "text")
    else:
        name = _PLACEHOLDER.sub(
            lambda m: text(by_slug.get(m.group(1))), table.display_name_template
        )
    return " ".join(name.split()).strip(" ,;")  # "{{last}}, {{first}}" without a last name


def placeholders(template: str) -> list[str]:
    """The slugs a displayName template names."""
    return _PLACEHOLDER.findall(template)


def check_fields(
    table: CustomersTable,
    region: str,
    changes: Sequence[tuple[uuid.UUID, Any]],
    current: Mapping[str, Any] | None = None,
    *,
    require: bool = True,
) -> dict[str, Any]:
    """The record's values after `changes` (None clears a field) on `current` (None: a new
    record). Every broken rule is raised together (`errors.raise_all`): an unknown field type
    first (404), else every bad value, repeated field and (with `require`) missing required
    field in one 422."""
    values = dict(current or {})
    errors: list[DomainError] = []
    seen: set[uuid.UUID] = set()
    for field_type_id, value in changes:
        field_type = table.field_types.get(field_type_id)
        if field_type is None:
            errors.append(
                NotFound(
                    f"No such customer field type: {field_type_id}.",
                    code="field_type_not_found",
                    field=_path(field_type_id),
                )
            )
            continue
        if field_type_id in seen:
            errors.append(
                RuleViolation(
                    f"Field '{field_type.name}' is given twice.",
                    code="duplicate_field",
                    field=_path(field_type_id),
                )
            )
            continue
        seen.add(field_type_id)
        if value is None:
            if field_type.is_required:
                errors.append(
                    RuleViolation(
                        f"Field '{field_type.name}' is required: it cannot be cleared.",
                        code="required_field_missing",
                        field=_path(field_type_id),
                    )
                )
            values.pop(str(field_type_id), None)
            continue
        try:
            values[str(field_type_id)] = check_value(field_type, value, region)
        except RuleViolation as violation:
            errors.append(violation)
    for field_type in table.field_types.values() if require else ():
        if field_type.is_required and str(field_type.id) not in values:
            if any(e.field == _path(field_type.id) for e in errors):
                continue  # already reported: its value was bad
            errors.append(
                RuleViolation(
                    f"Field '{field_type.name}' is required.",
                    code="required_field_missing",
                    field=_path(field_type.id),
                )
            )
    raise_all(errors)
    return values


def key_values(table: CustomersTable, values: Mapping[str, Any]) -> dict[uuid.UUID, bytes]:
    """The digest of each key field's value."""
    return {
        f.id: value_digest(values[str(f.id)])
        for f in table.field_types.values()
        if f.is_key and str(f.id) in values
    }


def _duplicate_key(table: CustomersTable, field_type_ids: set[uuid.UUID]) -> Conflict:
    names = sorted(table.field_types[i].name for i in field_type_ids)
    first = min(field_type_ids, key=lambda i: table.field_types[i].position)
    return Conflict(
        "Another customer record has the same value of key field "
        + ", ".join(f"'{n}'" for n in names)
        + ".",
        code="duplicate_key_field",
        field=_path(first),
    )


# --- what the use cases take and answer ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateCustomer:
    fields: list[tuple[uuid.UUID, Any]]


@dataclass(frozen=True, slots=True)
class UpdateCustomer:
    """Set (or, with None, clear) these fields; the others stay as they are."""

    record_id: uuid.UUID
    fields: list[tuple[uuid.UUID, Any]]


@dataclass(frozen=True, slots=True)
class FindByRecordId:
    record_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class FindByKeyField:
    field_slug: str
    field_value: str


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


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A write sent with an Idempotency-Key: claimed in the write's own transaction, and its
    answer stored there, so a retry replays it instead of writing twice."""

    application_id: uuid.UUID
    key: str
    fingerprint: str
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class Written:
    answer: StoredResponse
    replayed: bool


Answer = Callable[[CustomerRecordView], StoredResponse]


def view_of(table: CustomersTable, row: asyncpg.Record) -> CustomerRecordView:
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


async def _write_once(
    db: Database,
    request: IdempotentRequest | None,
    now: datetime,
    write: Callable[[asyncpg.Connection], Awaitable[StoredResponse]],
) -> Written:
    async with db.transaction() as conn:
        if request is not None:
            stored = await idempotency.claim(
                conn, request.application_id, request.key, request.fingerprint, now, request.ttl
            )
            if stored is not None:
                return Written(stored, replayed=True)
        answer = await write(conn)
        if request is not None:
            await idempotency.store(conn, request.application_id, request.key, answer)
    return Written(answer, replayed=False)


# --- the use cases ------------------------------------------------------------------------------


async def create_customer(
    db: Database,
    catalog: Catalog,
    command: CreateCustomer,
    now: datetime,
    answer: Answer,
    idempotent: IdempotentRequest | None = None,
) -> Written:
    table = catalog.customers
    values = check_fields(table, catalog.default_phone_region, command.fields)
    display_name = display_name_of(table, values)
    keys = key_values(table, values)

    async def write(conn: asyncpg.Connection) -> StoredResponse:
        record_id = uuid.uuid4()
        taken = await store.insert_record(
            conn, catalog.organization_id, record_id, display_name, values, list(keys.items()), now
        )
        if taken:
            raise _duplicate_key(table, taken)
        return answer(_view(table, record_id, display_name, values, now, now))

    return await _write_once(db, idempotent, now, write)


async def update_customer(
    db: Database,
    catalog: Catalog,
    command: UpdateCustomer,
    now: datetime,
    answer: Answer,
    idempotent: IdempotentRequest | None = None,
) -> Written:
    table = catalog.customers
    region = catalog.default_phone_region
    # The values alone first, so a bad request is refused before a connection is taken.
    check_fields(table, region, command.fields, require=False)

    async def write(conn: asyncpg.Connection) -> StoredResponse:
        row = await store.record_by_id(
            conn, catalog.organization_id, command.record_id, for_update=True
        )
        if row is None:
            raise _record_not_found()
        before: dict[str, Any] = row["fields"]
        values = check_fields(table, region, command.fields, current=before)
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
            raise _duplicate_key(table, taken)
        view = _view(table, command.record_id, display_name, values, row["date_created"], now)
        return answer(view)

    return await _write_once(db, idempotent, now, write)


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
    try:
        value = check_value(
            field_type, _typed(field_type, query.field_value), catalog.default_phone_region
        )
    except RuleViolation as violation:
        raise RuleViolation(violation.detail, code=violation.code, field="fieldValue") from None
    async with db.driver() as conn:
        row = await store.record_by_key(
            conn, catalog.organization_id, field_type.id, value_digest(value)
        )
    if row is None:
        raise NotFound("No customer record has this key value.", code="customer_record_not_found")
    return view_of(table, row)


def _typed(field_type: CustomerFieldTypeConfig, text: str) -> Any:
    """The query's fieldValue (text on the wire) as a value of the field's kind."""
    if field_type.kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text  # refused by the kind's check
        return int(number) if number.is_integer() else number
    return text


async def get_customer(db: Database, catalog: Catalog, record_id: uuid.UUID) -> CustomerRecordView:
    async with db.driver() as conn:
        row = await store.record_by_id(conn, catalog.organization_id, record_id)
    if row is None:
        raise _record_not_found()
    return view_of(catalog.customers, row)


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
    if last_date < first_date:
        raise RuleViolation(
            "'to' must not be before 'from'.", code="invalid_date_range", field="to"
        )
    if (last_date - first_date).days >= MAX_APPOINTMENT_RANGE_DAYS:
        raise RuleViolation(
            f"The range may span at most {MAX_APPOINTMENT_RANGE_DAYS} days.",
            code="date_range_too_long",
            field="to",
        )
    async with db.driver() as conn:
        if not await store.record_exists(conn, catalog.organization_id, record_id):
            raise _record_not_found()
        rows = await store.appointments_of_record(
            conn, catalog.organization_id, record_id, first_date, last_date
        )
    return [record_from_row(row) for row in rows]
