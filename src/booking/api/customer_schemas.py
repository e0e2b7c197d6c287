"""Request and response models of the Customer Management API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, StrictStr, model_validator

from booking.api.schemas import ApiModel, FieldValue
from booking.domain import CustomerFieldKind
from booking.service.customers import CustomerRecordView

# The original's names of the kinds (a record's `dataType`).
DATA_TYPES = {
    CustomerFieldKind.TEXT: "Text",
    CustomerFieldKind.NUMBER: "Number",
    CustomerFieldKind.BOOLEAN: "Boolean",
    CustomerFieldKind.DATE: "Date",
    CustomerFieldKind.CHOICE: "Choice",
    CustomerFieldKind.PHONE: "Phone",
    CustomerFieldKind.EMAIL: "Email",
}
# The demo organization's (examples/demo.yaml), so that each example request succeeds there.
_FIRST_NAME = "6f1c2a4e-0000-4000-8000-000000000801"
_LAST_NAME = "6f1c2a4e-0000-4000-8000-000000000802"
_PHONE = "6f1c2a4e-0000-4000-8000-000000000803"
_EMAIL = "6f1c2a4e-0000-4000-8000-000000000804"
_NATIONAL_ID = "6f1c2a4e-0000-4000-8000-000000000805"


class CreateCustomerRequest(ApiModel):
    """`fields` is an object here (`{fieldTypeId: value}`), as in the original."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "fields": {
                        _FIRST_NAME: "Grace",
                        _LAST_NAME: "Hopper",
                        _PHONE: "020 7946 0019",
                        _EMAIL: "grace@example.com",
                        _NATIONAL_ID: "GH-1906",
                    }
                }
            ]
        }
    )

    fields: Annotated[dict[uuid.UUID, FieldValue], Field(max_length=100)]


class FieldChange(ApiModel):
    field_type_id: uuid.UUID
    value: FieldValue | None = Field(description="The new value; null clears the field.")


class UpdateCustomerRequest(ApiModel):
    """`fields` is an array here, unlike create, as in the original. Fields not listed keep
    their values."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"fields": [{"fieldTypeId": _PHONE, "value": "020 7946 0020"}]}]
        }
    )

    fields: Annotated[list[FieldChange], Field(max_length=100)]


class QueryCustomerRequest(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"queryType": "KeyField", "fieldSlug": "national-id", "fieldValue": "AL-1815"},
                {"queryType": "RecordId", "recordId": "6f1c2a4e-0000-4000-8000-000000000501"},
            ]
        }
    )

    query_type: Literal["RecordId", "KeyField"]
    record_id: uuid.UUID | None = None
    field_slug: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    field_value: Annotated[StrictStr, Field(min_length=1, max_length=2000)] | None = None

    @model_validator(mode="after")
    def _what_the_query_type_needs(self) -> Self:
        if self.query_type == "RecordId" and self.record_id is None:
            raise ValueError("queryType RecordId needs recordId")
        if self.query_type == "KeyField" and (self.field_slug is None or self.field_value is None):
            raise ValueError("queryType KeyField needs fieldSlug and fieldValue")
        return self


class CustomerCreatedOut(ApiModel):
    record_id: uuid.UUID


class CustomerFieldData(ApiModel):
    display_text: str
    text: str


class CustomerFieldOut(ApiModel):
    field_type_id: uuid.UUID
    data_type: str = Field(examples=["Text"], description=", ".join(DATA_TYPES.values()))
    field_name: str
    slug: str = Field(examples=["customer-first-name"])
    is_key: bool
    is_required: bool
    data: CustomerFieldData
    value: Any
    hash: str = Field(description="The stored value's 16-byte BLAKE2b digest, base64.")
    color_code: str | None
    position: int


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class CustomerRecordOut(ApiModel):
    record_id: uuid.UUID
    data_table_id: uuid.UUID
    display_name: str
    date_created: str
    date_updated: str
    fields: list[CustomerFieldOut] = Field(description="The fields that have a value, by position.")

    @classmethod
    def from_view(cls, view: CustomerRecordView) -> CustomerRecordOut:
        return cls.model_construct(
            record_id=view.record_id,
            data_table_id=view.data_table_id,
            display_name=view.display_name,
            date_created=_iso_utc(view.date_created),
            date_updated=_iso_utc(view.date_updated),
            fields=[
                CustomerFieldOut.model_construct(
                    field_type_id=f.field_type.id,
                    data_type=DATA_TYPES[f.field_type.kind],
                    field_name=f.field_type.name,
                    slug=f.field_type.slug,
                    is_key=f.field_type.is_key,
                    is_required=f.field_type.is_required,
                    data=CustomerFieldData.model_construct(
                        display_text=f.display_text, text=f.text
                    ),
                    value=f.value,
                    hash=f.hash,
                    color_code=f.field_type.color_code,
                    position=f.field_type.position,
                )
                for f in view.fields
            ],
        )
