"""The rules on customer records' fields, without HTTP or a database."""

from __future__ import annotations

import uuid
from typing import Any

from booking.domain import CustomerFieldKind
from booking.service.catalog import CustomerFieldTypeConfig, CustomersTable
from booking.service.customer_rules import (
    check_fields,
    check_value,
    display_name_of,
    value_digest,
)
from booking.service.errors import DomainError, NotFound, several


def field_type(
    slug: str, kind: CustomerFieldKind = CustomerFieldKind.TEXT, **options: object
) -> CustomerFieldTypeConfig:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "name": slug.capitalize(),
        "slug": slug,
        "kind": kind,
        "is_key": False,
        "is_required": False,
        "position": 0,
        "options": (),
        "color_code": None,
        **options,
    }
    return CustomerFieldTypeConfig(**values)  # type: ignore[arg-type]


FIRST = field_type("first", is_required=True)
LAST = field_type("last", position=1)
PHONE = field_type("phone", CustomerFieldKind.PHONE, position=2)
COUNT = field_type("count", CustomerFieldKind.NUMBER, position=3)
EMAIL = field_type("email", CustomerFieldKind.EMAIL, position=4)
TABLE = CustomersTable(
    id=uuid.uuid4(),
    display_name_template="{{last}}, {{ first }}",
    field_types={f.id: f for f in (FIRST, LAST, PHONE, COUNT, EMAIL)},
)


def checked(field: CustomerFieldTypeConfig, value: Any, region: str = "US") -> Any:
    broken: list[DomainError] = []
    stored = check_value(field, value, region, broken)
    assert broken == []
    return stored


def test_values_are_normalized_by_kind() -> None:
    assert checked(PHONE, "(202) 555-0143") == "+12025550143"
    assert checked(PHONE, "020 7946 0018", "GB") == "+442079460018"
    assert checked(EMAIL, "Ada@Example.COM") == "Ada@example.com"
    assert checked(COUNT, 7.0) == 7
    assert value_digest(checked(COUNT, 7.0)) == value_digest(7)


def test_every_broken_rule_is_collected_and_none_quotes_the_value() -> None:
    broken: list[DomainError] = []
    check_fields(
        TABLE,
        "US",
        [(PHONE.id, "secret-123"), (COUNT.id, "secret-456"), (EMAIL.id, "secret@@x")],
        broken,
    )

    assert [(e.field, e.code) for e in broken] == [
        (f"fields.{PHONE.id}", "invalid_phone_number"),
        (f"fields.{COUNT.id}", "invalid_field_value"),
        (f"fields.{EMAIL.id}", "invalid_email"),
        (f"fields.{FIRST.id}", "required_field_missing"),
    ]
    assert "secret" not in str(several(broken))


def test_an_unknown_field_type_is_listed_with_the_other_broken_rules() -> None:
    unknown = uuid.uuid4()
    broken: list[DomainError] = []
    check_fields(TABLE, "US", [(COUNT.id, "x"), (unknown, "y"), (FIRST.id, "Ada")], broken)
    assert [(e.code, e.field) for e in broken] == [
        ("invalid_field_value", f"fields.{COUNT.id}"),
        ("field_type_not_found", f"fields.{unknown}"),
    ]
    alone: list[DomainError] = []
    check_fields(TABLE, "US", [(unknown, "y"), (FIRST.id, "Ada")], alone)
    assert isinstance(several(alone), NotFound)  # alone, it answers 404 as itself


def test_changes_apply_on_the_current_values_and_none_clears() -> None:
    current = {str(FIRST.id): "Ada", str(LAST.id): "Lovelace"}
    broken: list[DomainError] = []
    assert check_fields(TABLE, "US", [(LAST.id, None)], broken, current) == {str(FIRST.id): "Ada"}
    assert broken == []
    check_fields(TABLE, "US", [(FIRST.id, None)], broken, current)
    assert [e.code for e in broken] == ["required_field_missing"]  # once, not twice


def test_the_display_name_follows_the_template() -> None:
    values = {str(FIRST.id): "Ada", str(LAST.id): "Lovelace"}
    assert display_name_of(TABLE, values) == "Lovelace, Ada"
    assert display_name_of(TABLE, {str(FIRST.id): "Ada"}) == "Ada"
    untemplated = CustomersTable(TABLE.id, None, TABLE.field_types)
    assert display_name_of(untemplated, values) == "Ada Lovelace"
