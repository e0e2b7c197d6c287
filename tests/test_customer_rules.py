"""The rules on customer records' fields, without HTTP or a database."""

from __future__ import annotations

import uuid

import pytest

from booking.service.catalog import CustomerFieldTypeConfig, CustomersTable
from booking.service.customers import check_fields, check_value, display_name_of, value_digest
from booking.service.errors import NotFound, RuleViolation, RuleViolations, raise_all


def field_type(slug: str, kind: str = "text", **options: object) -> CustomerFieldTypeConfig:
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
PHONE = field_type("phone", "phone", position=2)
COUNT = field_type("count", "number", position=3)
TABLE = CustomersTable(
    id=uuid.uuid4(),
    display_name_template="{{last}}, {{ first }}",
    field_types={f.id: f for f in (FIRST, LAST, PHONE, COUNT)},
)


def test_values_are_normalized_by_kind() -> None:
    assert check_value(PHONE, "(202) 555-0143", "US") == "+12025550143"
    assert check_value(PHONE, "020 7946 0018", "GB") == "+442079460018"
    assert check_value(COUNT, 7.0, "US") == 7
    assert value_digest(check_value(COUNT, 7.0, "US")) == value_digest(7)


def test_every_broken_rule_is_collected_and_none_quotes_the_value() -> None:
    with pytest.raises(RuleViolations) as raised:
        check_fields(TABLE, "US", [(PHONE.id, "secret-123"), (COUNT.id, "secret-456")])

    violations = raised.value.violations
    assert [(v.field, v.code) for v in violations] == [
        (f"fields.{PHONE.id}", "invalid_phone_number"),
        (f"fields.{COUNT.id}", "invalid_field_value"),
        (f"fields.{FIRST.id}", "required_field_missing"),
    ]
    assert "secret" not in str(raised.value)


def test_an_unknown_field_type_wins_over_the_other_errors() -> None:
    unknown = uuid.uuid4()
    with pytest.raises(NotFound) as raised:
        check_fields(TABLE, "US", [(COUNT.id, "x"), (unknown, "y")])
    assert raised.value.field == f"fields.{unknown}"


def test_changes_apply_on_the_current_values_and_none_clears() -> None:
    current = {str(FIRST.id): "Ada", str(LAST.id): "Lovelace"}
    assert check_fields(TABLE, "US", [(LAST.id, None)], current) == {str(FIRST.id): "Ada"}
    with pytest.raises(RuleViolation) as raised:
        check_fields(TABLE, "US", [(FIRST.id, None)], current)
    assert raised.value.code == "required_field_missing"


def test_the_display_name_follows_the_template() -> None:
    values = {str(FIRST.id): "Ada", str(LAST.id): "Lovelace"}
    assert display_name_of(TABLE, values) == "Lovelace, Ada"
    assert display_name_of(TABLE, {str(FIRST.id): "Ada"}) == "Ada"
    untemplated = CustomersTable(TABLE.id, None, TABLE.field_types)
    assert display_name_of(untemplated, values) == "Ada Lovelace"


def test_raise_all_raises_one_error_as_itself_and_several_together() -> None:
    one = RuleViolation("a", code="a", field="x")
    two = RuleViolation("b", code="b", field="y")
    raise_all([])
    with pytest.raises(RuleViolation) as single:
        raise_all([one])
    assert single.value is one
    with pytest.raises(RuleViolations) as several:
        raise_all([one, two])
    assert several.value.violations == (one, two)
