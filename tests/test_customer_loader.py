"""The customers table as configuration: field types, the displayName template and records in
the YAML file, checked with the same rules as the API; and the demo's partner flow."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.loader import ConfigFileError, load_file, parse_config
from booking.store.models import CustomerKey, CustomerRecord, Organization
from tests.builders import CUSTOMERS_MANAGER, MANAGER
from tests.conftest import bearer
from tests.test_loader import DEMO, DEMO_ORG, ORG_B, PARTNER, PERMIT, dump, org, write

ADA = "6f1c2a4e-0000-4000-8000-000000000501"
NATIONAL_ID = "00000000-0000-4000-8000-00000000b805"


def with_customers(records: list[dict[str, Any]] | None = None, **table: Any) -> dict[str, Any]:
    customers: dict[str, Any] = {
        "displayName": "{{first-name}} {{last-name}}",
        "fieldTypes": [
            {
                "id": "00000000-0000-4000-8000-00000000b801",
                "name": "First name",
                "slug": "first-name",
                "kind": "text",
                "isRequired": True,
            },
            {
                "id": "00000000-0000-4000-8000-00000000b802",
                "name": "Last name",
                "slug": "last-name",
                "kind": "text",
            },
            {
                "id": "00000000-0000-4000-8000-00000000b803",
                "name": "Phone",
                "slug": "phone",
                "kind": "phone",
            },
            {
                "id": NATIONAL_ID,
                "name": "National id",
                "slug": "national-id",
                "kind": "text",
                "isKey": True,
            },
        ],
    }
    customers.update(table)
    return org(customers=customers, customerRecords=records or [])


def record(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"00000000-0000-4000-8000-00000000b5{n:02d}", "fields": fields}


async def test_demo_records_are_loaded_with_their_fields_and_display_names(
    engine: AsyncEngine,
) -> None:
    await load_file(engine, DEMO)

    async with engine.connect() as conn:
        ada = (
            await conn.execute(select(CustomerRecord).where(CustomerRecord.id == uuid.UUID(ADA)))
        ).one()
        table_id = await conn.scalar(
            select(Organization.customers_table_id).where(Organization.id == DEMO_ORG)
        )
        keys = (await conn.execute(select(CustomerKey.record_id))).scalars().all()
    assert ada.display_name == "Ada Lovelace"
    assert ada.fields["6f1c2a4e-0000-4000-8000-000000000803"] == "+442079460018"  # E.164
    assert table_id == uuid.UUID("6f1c2a4e-0000-4000-8000-000000000800")
    assert len(keys) == 2  # each record's national id


async def test_the_partner_flow_of_the_readme(
    engine: AsyncEngine, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Find by key field -> 404 -> create -> book naming the record -> its appointments."""
    await load_file(engine, DEMO)
    auth = bearer(settings, "demo-partner", [MANAGER, CUSTOMERS_MANAGER])
    query = {"queryType": "KeyField", "fieldSlug": "national-id", "fieldValue": "GH-1906"}

    missing = await client.post(f"/{PARTNER}/customers/query", json=query, headers=auth)
    assert missing.status_code == 404
    created = await client.post(
        f"/{PARTNER}/customers",
        json={
            "fields": {
                "6f1c2a4e-0000-4000-8000-000000000801": "Grace",
                "6f1c2a4e-0000-4000-8000-000000000802": "Hopper",
                "6f1c2a4e-0000-4000-8000-000000000803": "020 7946 0019",
                "6f1c2a4e-0000-4000-8000-000000000804": "grace@example.com",
                "6f1c2a4e-0000-4000-8000-000000000805": "GH-1906",
            }
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    record_id = created.json()["recordId"]
    found = await client.post(f"/{PARTNER}/customers/query", json=query, headers=auth)
    assert found.json()["displayName"] == "Grace Hopper"
    booked = await client.post(
        f"/{PARTNER}/calendars/{PERMIT}/2026-12-02/0/appointments",
        json={
            "serviceTypeId": "6f1c2a4e-0000-4000-8000-000000000303",
            "startTime": 540,
            "channel": "FaceToFace",
            "cusotmerRecordId": record_id,
            "contactPhoneNumber": "020 7946 0019",
            "contactEmail": "grace@example.com",
        },
        headers=auth,
    )
    assert booked.status_code == 201, booked.text
    listed = await client.get(
        f"/{PARTNER}/customers/{record_id}/appointments",
        params={"from": "2026-12-01", "to": "2026-12-31"},
        headers=auth,
    )
    assert [a["caseId"] for a in listed.json()] == [booked.json()["caseId"]]
    assert listed.json()[0]["customer"]["displayName"] == "Grace Hopper"


async def test_records_of_the_file_are_checked_like_the_api_without_quoting_values(
    tmp_path: Path,
) -> None:
    content = dump(
        with_customers(
            [
                record(1, **{"first-name": "Ada", "phone": "not-a-phone-5550143"}),
                record(2, **{"last-name": "Secretname", "passport": "X"}),
            ]
        )
    )

    with pytest.raises(ConfigFileError) as error:
        parse_config(content)

    assert error.value.problems == (
        "organizations[0].customerRecords[0].fields.phone: "
        "Field 'Phone' must be a valid phone number.",
        "organizations[0].customerRecords[1].fields.passport: no customer field type has this slug",
    )
    assert "5550143" not in str(error.value)


@pytest.mark.parametrize(
    ("customers", "expected"),
    [
        ({"displayName": "{{first-name}} {{nickname}}"}, "unknown field slugs ['nickname']"),
        (
            {
                "fieldTypes": [
                    {
                        "id": str(uuid.uuid4()),
                        "name": "K",
                        "slug": f"k{i}",
                        "kind": "text",
                        "isKey": True,
                    }
                    for i in range(5)
                ]
            },
            "at most 4 key fields",
        ),
        (
            {
                "fieldTypes": [
                    {"id": str(uuid.uuid4()), "name": "A", "slug": "a", "kind": "text"},
                    {"id": str(uuid.uuid4()), "name": "B", "slug": "a", "kind": "text"},
                ]
            },
            "'a' is listed twice",
        ),
        (
            {
                "fieldTypes": [
                    {
                        "id": str(uuid.uuid4()),
                        "name": "A",
                        "slug": "a",
                        "kind": "boolean",
                        "isKey": True,
                    }
                ]
            },
            "a key field is of kind",
        ),
        (
            {
                "fieldTypes": [
                    {"id": str(uuid.uuid4()), "name": "A", "slug": "Not A Slug", "kind": "text"}
                ]
            },
            "fieldTypes[0].slug",
        ),
    ],
)
def test_a_bad_customers_table_is_rejected(customers: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigFileError) as error:
        parse_config(dump(with_customers(**customers)))
    assert expected in str(error.value)


async def test_two_records_with_one_key_value_are_refused_without_quoting_it(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        dump(
            with_customers(
                [
                    record(1, **{"first-name": "A", "national-id": "NID-777"}),
                    record(2, **{"first-name": "B", "national-id": "NID-777"}),
                ]
            )
        ),
    )

    with pytest.raises(ConfigFileError) as error:
        await load_file(engine, path)

    assert "customerRecords[1]" in str(error.value)
    assert "NID-777" not in str(error.value)


async def test_loading_customers_twice_changes_nothing_and_a_changed_value_moves_its_key(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = dump(with_customers([record(1, **{"first-name": "A", "national-id": "N1"})]))
    await load_file(engine, write(tmp_path, first))
    await load_file(engine, write(tmp_path, first))
    changed = dump(with_customers([record(1, **{"first-name": "A", "national-id": "N2"})]))
    await load_file(engine, write(tmp_path, changed))

    async with engine.connect() as conn:
        records = (await conn.execute(select(CustomerRecord))).all()
        keys = (await conn.execute(select(CustomerKey))).all()
        table_id = await conn.scalar(
            select(Organization.customers_table_id).where(Organization.id == uuid.UUID(ORG_B))
        )
    assert [(r.display_name, r.fields[NATIONAL_ID]) for r in records] == [("A", "N2")]
    assert len(keys) == 1
    assert table_id == uuid.uuid5(uuid.UUID(ORG_B), "customers")  # stable without dataTableId
