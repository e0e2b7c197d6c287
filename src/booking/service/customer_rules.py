"""The rules on customer records' fields: pure functions of the organization's customers table
and the values sent, with no I/O. The use cases that run them around the database are in
`booking.service.customers`.

Values are checked with the booking's rules (`booking.service.rules`: a field type's kind;
phones parsed with the organization's default region and kept in E.164; emails normalized).
Each check appends the rules it finds broken to `broken` instead of raising, so that one answer
names every broken rule (`errors.several`). No field value is ever written into an error's
text: errors name the field type, never what was sent."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import phonenumbers

from booking.domain import CustomerFieldKind, FieldKind
from booking.service import rules
from booking.service.catalog import CustomerFieldTypeConfig, CustomersTable, FieldTypeConfig
from booking.service.errors import Conflict, DomainError, NotFound, RuleViolation

# The kinds a key field can be of: those whose values a person is found by.
KEY_KINDS = (
    CustomerFieldKind.TEXT,
    CustomerFieldKind.NUMBER,
    CustomerFieldKind.PHONE,
    CustomerFieldKind.EMAIL,
)

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z0-9]+(?:-[a-z0-9]+)*)\s*\}\}")


def field_path(field_type_id: uuid.UUID) -> str:
    """The client's name of a field in `errors[].field`."""
    return f"fields.{field_type_id}"


def check_value(
    field_type: CustomerFieldTypeConfig, value: Any, region: str, broken: list[DomainError]
) -> Any:
    """The value as stored: of the field type's kind, phones in E.164, emails normalized,
    whole numbers as integers. A bad value is a broken rule naming the field type (never the
    value), and answers None."""
    if field_type.kind is CustomerFieldKind.PHONE or field_type.kind is CustomerFieldKind.EMAIL:
        is_phone = field_type.kind is CustomerFieldKind.PHONE
        # The booking's rule; its refusal names the contact fields (and the email validator's
        # message may quote the address): this field's own refusal replaces it.
        contact_refusals: list[DomainError] = []
        normalized = None
        if isinstance(value, str):
            normalized = (
                rules.normalize_phone(value, region, contact_refusals)
                if is_phone
                else rules.normalize_email(value, contact_refusals)
            )
        if normalized is None:
            broken.append(
                RuleViolation(
                    f"Field '{field_type.name}' must be a valid "
                    + ("phone number." if is_phone else "email address."),
                    code="invalid_phone_number" if is_phone else "invalid_email",
                    field=field_path(field_type.id),
                )
            )
        return normalized
    refusal = rules.field_value_refusal(
        FieldTypeConfig(
            field_type.id, field_type.name, FieldKind(field_type.kind), field_type.options, False
        ),
        value,
    )
    if refusal is not None:
        broken.append(refusal)
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # 7.0 and 7 are one key value
    return value


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
    if field_type.kind is CustomerFieldKind.PHONE:
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
        name = " ".join(
            text(f) for f in table.field_types.values() if f.kind is CustomerFieldKind.TEXT
        )
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
    broken: list[DomainError],
    current: Mapping[str, Any] | None = None,
    *,
    require: bool = True,
) -> dict[str, Any]:
    """The record's values after `changes` (None clears a field) on `current` (None: a new
    record). Each unknown field type, bad value, repeated field and (with `require`) missing
    required field is a broken rule of its own, in that order."""
    values = dict(current or {})
    seen: set[uuid.UUID] = set()
    refused: set[uuid.UUID] = set()
    for field_type_id, value in changes:
        field_type = table.field_types.get(field_type_id)
        if field_type is None:
            broken.append(
                NotFound(
                    f"No such customer field type: {field_type_id}.",
                    code="field_type_not_found",
                    field=field_path(field_type_id),
                )
            )
            continue
        if field_type_id in seen:
            broken.append(
                RuleViolation(
                    f"Field '{field_type.name}' is given twice.",
                    code="duplicate_field",
                    field=field_path(field_type_id),
                )
            )
            continue
        seen.add(field_type_id)
        if value is None:
            if field_type.is_required:
                refused.add(field_type_id)
                broken.append(
                    RuleViolation(
                        f"Field '{field_type.name}' is required: it cannot be cleared.",
                        code="required_field_missing",
                        field=field_path(field_type_id),
                    )
                )
            values.pop(str(field_type_id), None)
            continue
        before = len(broken)
        checked = check_value(field_type, value, region, broken)
        if len(broken) > before:
            refused.add(field_type_id)
        else:
            values[str(field_type_id)] = checked
    for field_type in table.field_types.values() if require else ():
        if field_type.is_required and str(field_type.id) not in values:
            if field_type.id in refused:
                continue  # already reported: its value was bad, or it was cleared
            broken.append(
                RuleViolation(
                    f"Field '{field_type.name}' is required.",
                    code="required_field_missing",
                    field=field_path(field_type.id),
                )
            )
    return values


def key_values(table: CustomersTable, values: Mapping[str, Any]) -> dict[uuid.UUID, bytes]:
    """The digest of each key field's value."""
    return {
        f.id: value_digest(values[str(f.id)])
        for f in table.field_types.values()
        if f.is_key and str(f.id) in values
    }


def duplicate_key(table: CustomersTable, field_type_ids: set[uuid.UUID]) -> Conflict:
    """The answer when another record holds the value of these key fields."""
    names = sorted(table.field_types[i].name for i in field_type_ids)
    first = min(field_type_ids, key=lambda i: table.field_types[i].position)
    return Conflict(
        "Another customer record has the same value of key field "
        + ", ".join(f"'{n}'" for n in names)
        + ".",
        code="duplicate_key_field",
        field=field_path(first),
    )
