"""The Customer Management API: create, read, update and find customer records, erase one, and
list a customer's appointments across calendars."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from booking.store.models import (
    Appointment,
    CustomerFieldType,
    CustomerKey,
    CustomerRecord,
    Organization,
)
from tests import builders
from tests.builders import CUSTOMERS_MANAGER, MANAGER, People, World
from tests.conftest import TODAY, bearer

PHONE = "(202) 555-0143"
PHONE_E164 = "+12025550143"


@pytest.fixture
async def people(engine: AsyncEngine, world: World) -> People:
    async with engine.begin() as conn:
        return await builders.people(conn, world)


@pytest.fixture
def staff(settings: Settings, world: World, people: People) -> dict[str, str]:
    """A token with both roles: it manages customers and books."""
    return bearer(settings, world.client_id, [MANAGER, CUSTOMERS_MANAGER])


def customers_path(world: World, *rest: object) -> str:
    return "/".join([f"/{world.application_id}/customers", *(str(part) for part in rest)])


async def create(
    client: httpx.AsyncClient, world: World, headers: dict[str, str], fields: dict[str, object]
) -> httpx.Response:
    return await client.post(customers_path(world), json={"fields": fields}, headers=headers)


async def create_ada(
    client: httpx.AsyncClient, world: World, people: People, headers: dict[str, str], **more: object
) -> str:
    values: dict[str, object] = {"first_name": "Ada", "last_name": "Lovelace", **more}
    response = await create(client, world, headers, people.fields(**values))
    assert response.status_code == 201, response.text
    record_id: str = response.json()["recordId"]
    return record_id


def field_of(record: dict[str, Any], field_type_id: uuid.UUID) -> dict[str, Any]:
    return next(f for f in record["fields"] if f["fieldTypeId"] == str(field_type_id))


# --- create and read ----------------------------------------------------------------------------


async def test_create_answers_201_with_the_record_id_and_its_location(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    response = await create(
        client, world, staff, people.fields(first_name="Ada", last_name="Lovelace")
    )

    assert response.status_code == 201, response.text
    record_id = response.json()["recordId"]
    assert response.json() == {"recordId": record_id}
    assert response.headers["location"] == customers_path(world, record_id)
    assert (await client.get(response.headers["location"], headers=staff)).status_code == 200


async def test_a_record_has_the_originals_shape_with_fields_in_position_order(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    record_id = await create_ada(
        client,
        world,
        people,
        staff,
        tier="Gold",
        vip=True,
        national_id="AL-1815",
        phone=PHONE,
        born="1815-12-10",
    )

    record = (await client.get(customers_path(world, record_id), headers=staff)).json()

    async with engine.connect() as conn:
        table_id = await conn.scalar(
            select(Organization.customers_table_id).where(Organization.id == world.organization_id)
        )
    assert record["recordId"] == record_id
    assert record["dataTableId"] == str(table_id)
    assert record["displayName"] == "Ada Lovelace"
    assert record["dateCreated"].endswith("Z")
    assert record["dateUpdated"] == record["dateCreated"]
    assert [f["slug"] for f in record["fields"]] == [
        "first-name",
        "last-name",
        "phone",
        "national-id",
        "vip",
        "born",
        "tier",
    ]
    assert [f["position"] for f in record["fields"]] == [0, 1, 2, 4, 6, 7, 8]
    national_id = field_of(record, people.national_id)
    assert national_id == {
        "fieldTypeId": str(people.national_id),
        "dataType": "Text",
        "fieldName": "National id",
        "slug": "national-id",
        "isKey": True,
        "isRequired": False,
        "data": {"displayText": "AL-1815", "text": "AL-1815"},
        "value": "AL-1815",
        "hash": national_id["hash"],
        "colorCode": "orange",
        "position": 4,
    }
    assert len(base64.b64decode(national_id["hash"])) == 16
    assert field_of(record, people.first_name)["isRequired"] is True
    assert field_of(record, people.vip)["data"] == {"displayText": "Yes", "text": "true"}
    assert field_of(record, people.vip)["dataType"] == "Boolean"
    assert field_of(record, people.phone)["dataType"] == "Phone"
    assert field_of(record, people.phone)["data"]["displayText"] == "+1 202-555-0143"
    assert field_of(record, people.born)["value"] == "1815-12-10"
    assert field_of(record, people.tier)["dataType"] == "Choice"


async def test_the_hash_is_a_digest_of_the_stored_value(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    first = await create_ada(client, world, people, staff, national_id="A1")
    second = await create_ada(client, world, people, staff, national_id="A2")
    hashes = []
    for record_id in (first, second):
        record = (await client.get(customers_path(world, record_id), headers=staff)).json()
        hashes.append(
            (field_of(record, people.first_name)["hash"], field_of(record, people.national_id))
        )
    assert hashes[0][0] == hashes[1][0]  # both "Ada"
    assert hashes[0][1]["hash"] != hashes[1][1]["hash"]


async def test_phone_is_stored_in_e164_and_email_normalized(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    record_id = await create_ada(client, world, people, staff, phone=PHONE, email="Ada@Example.COM")

    record = (await client.get(customers_path(world, record_id), headers=staff)).json()
    assert field_of(record, people.phone)["value"] == PHONE_E164  # read in the region (US)
    assert field_of(record, people.email)["value"] == "Ada@example.com"


async def test_without_a_template_the_display_name_is_the_text_fields_in_order(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Organization)
            .where(Organization.id == world.organization_id)
            .values(customer_display_name=None)
        )
    record_id = await create_ada(client, world, people, staff, national_id="AL-1815")

    record = (await client.get(customers_path(world, record_id), headers=staff)).json()
    assert record["displayName"] == "Ada Lovelace AL-1815"


# --- validation ---------------------------------------------------------------------------------


async def test_every_broken_rule_is_listed_in_one_422(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    response = await create(
        client,
        world,
        staff,
        people.fields(
            first_name="Ada",
            phone="not a phone",
            email="ada at example",
            member_number="seven",
            vip="yes",
            born="1815-13-40",
            tier="Bronze",
        ),
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "invalid_phone_number"  # the first, as a booking's several rules
    by_field = {e["field"]: e["code"] for e in problem["errors"]}
    assert by_field == {
        f"fields.{people.phone}": "invalid_phone_number",
        f"fields.{people.email}": "invalid_email",
        f"fields.{people.member_number}": "invalid_field_value",
        f"fields.{people.vip}": "invalid_field_value",
        f"fields.{people.born}": "invalid_field_value",
        f"fields.{people.tier}": "invalid_field_value",
        f"fields.{people.last_name}": "required_field_missing",
    }


async def test_one_broken_rule_answers_with_its_own_code(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    response = await create(client, world, staff, people.fields(first_name="Ada"))

    assert response.status_code == 422
    assert response.json()["code"] == "required_field_missing"
    assert response.json()["errors"][0]["field"] == f"fields.{people.last_name}"


async def test_unknown_field_type_is_404_naming_it(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    unknown = uuid.uuid4()
    fields = {**people.fields(first_name="Ada", last_name="Lovelace"), str(unknown): "x"}

    response = await create(client, world, staff, fields)

    assert response.status_code == 404
    assert response.json()["code"] == "field_type_not_found"
    assert str(unknown) in response.json()["detail"]


async def test_an_unknown_field_type_with_other_broken_rules_is_listed_in_the_one_422(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    unknown = uuid.uuid4()
    fields = {**people.fields(first_name="Ada", last_name="Lovelace", vip="yes"), str(unknown): 1}

    response = await create(client, world, staff, fields)

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        (f"fields.{people.vip}", "invalid_field_value"),
        (f"fields.{unknown}", "field_type_not_found"),
    ]


async def test_a_booking_field_type_is_not_a_customer_field_type(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        booking_field = await builders.field_type(conn, world.organization_id)
    fields = {**people.fields(first_name="Ada", last_name="Lovelace"), str(booking_field): "x"}

    assert (await create(client, world, staff, fields)).status_code == 404


async def test_malformed_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    path = customers_path(world)
    for body, field in [
        ({}, "fields"),
        ({"fields": {"not-a-guid": "x"}}, "fields.not-a-guid"),
        ({"fields": {}, "extra": 1}, "extra"),
        ({"fields": [{"fieldTypeId": str(people.vip), "value": True}]}, "fields"),
    ]:
        response = await client.post(path, json=body, headers=staff)
        assert response.status_code == 422, (body, response.text)
        assert field in {e["field"] for e in response.json()["errors"]}, response.json()


async def test_key_field_values_are_unique_409_duplicate_key_field(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    await create_ada(client, world, people, staff, national_id="AL-1815", member_number=7)

    same_id = await create(
        client,
        world,
        staff,
        people.fields(first_name="Bob", last_name="B", national_id="AL-1815"),
    )
    same_number = await create(
        client, world, staff, people.fields(first_name="Bob", last_name="B", member_number=7.0)
    )

    for response, name in ((same_id, "National id"), (same_number, "Member number")):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "duplicate_key_field"
        assert f"'{name}'" in response.json()["detail"]
    assert (
        await create(
            client, world, staff, people.fields(first_name="C", last_name="C", national_id="X")
        )
    ).status_code == 201


async def test_key_values_of_another_organization_do_not_collide(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    world: World,
    people: People,
    staff: dict[str, str],
) -> None:
    async with engine.begin() as conn:
        other = await builders.world(conn)
        other_people = await builders.people(conn, other)
    other_staff = bearer(settings, other.client_id, [MANAGER, CUSTOMERS_MANAGER])
    await create_ada(client, world, people, staff, national_id="AL-1815")

    response = await create(
        client,
        other,
        other_staff,
        other_people.fields(first_name="Ada", last_name="L", national_id="AL-1815"),
    )
    assert response.status_code == 201, response.text


# --- update -------------------------------------------------------------------------------------


async def patch(
    client: httpx.AsyncClient,
    world: World,
    headers: dict[str, str],
    record_id: str,
    changes: list[tuple[uuid.UUID, object]],
) -> httpx.Response:
    body = {"fields": [{"fieldTypeId": str(i), "value": v} for i, v in changes]}
    return await client.patch(customers_path(world, record_id), json=body, headers=headers)


async def test_patch_changes_the_listed_fields_only_and_answers_200_with_the_record(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    clock: Any,
) -> None:
    record_id = await create_ada(client, world, people, staff, phone=PHONE, vip=True)
    clock.advance(minutes=5)

    response = await patch(
        client, world, staff, record_id, [(people.last_name, "Byron"), (people.vip, None)]
    )

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["displayName"] == "Ada Byron"
    assert [f["slug"] for f in record["fields"]] == ["first-name", "last-name", "phone"]
    assert field_of(record, people.phone)["value"] == PHONE_E164
    assert record["dateUpdated"] > record["dateCreated"]
    assert (await client.get(customers_path(world, record_id), headers=staff)).json() == record


async def test_patch_cannot_remove_a_required_field_and_checks_values(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    record_id = await create_ada(client, world, people, staff)

    response = await patch(
        client, world, staff, record_id, [(people.first_name, None), (people.email, "nope")]
    )

    assert response.status_code == 422
    assert {e["code"] for e in response.json()["errors"]} == {
        "required_field_missing",
        "invalid_email",
    }
    twice = await patch(client, world, staff, record_id, [(people.vip, True), (people.vip, False)])
    assert twice.status_code == 422
    assert twice.json()["code"] == "duplicate_field"


async def test_patch_to_a_key_value_another_record_holds_is_409_and_freeing_it_works(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff, national_id="A")
    bob = await create_ada(client, world, people, staff, national_id="B")

    taken = await patch(client, world, staff, bob, [(people.national_id, "A")])
    assert taken.status_code == 409
    assert taken.json()["code"] == "duplicate_key_field"

    assert (await patch(client, world, staff, ada, [(people.national_id, "C")])).status_code == 200
    moved = await patch(client, world, staff, bob, [(people.national_id, "A")])
    assert moved.status_code == 200, moved.text
    found = await query_key(client, world, staff, "national-id", "A")
    assert found.json()["recordId"] == bob
    assert (await query_key(client, world, staff, "national-id", "B")).status_code == 404


async def test_patch_of_an_unknown_record_is_404(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    response = await patch(client, world, staff, str(uuid.uuid4()), [(people.vip, True)])
    assert response.status_code == 404
    assert response.json()["code"] == "customer_record_not_found"


# --- query ----------------------------------------------------------------------------------------


async def query_key(
    client: httpx.AsyncClient, world: World, headers: dict[str, str], slug: str, value: str
) -> httpx.Response:
    body = {"queryType": "KeyField", "fieldSlug": slug, "fieldValue": value}
    return await client.post(customers_path(world, "query"), json=body, headers=headers)


async def test_query_by_key_field_finds_the_one_record(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff, national_id="AL-1815", member_number=7)
    await create_ada(client, world, people, staff, national_id="AT-1912")

    found = await query_key(client, world, staff, "national-id", "AL-1815")
    by_number = await query_key(client, world, staff, "member-number", "7.0")

    assert found.status_code == 200, found.text
    assert found.json()["recordId"] == ada
    assert found.json() == (await client.get(customers_path(world, ada), headers=staff)).json()
    assert by_number.json()["recordId"] == ada


async def test_query_by_a_phone_key_normalizes_the_value_like_create(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(CustomerFieldType)
            .where(CustomerFieldType.id == people.phone)
            .values(is_key=True)
        )
    ada = await create_ada(client, world, people, staff, phone="+1 202 555 0143")

    found = await query_key(client, world, staff, "phone", PHONE)
    assert found.status_code == 200, found.text
    assert found.json()["recordId"] == ada


async def test_query_answers_404_when_nothing_matches(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    await create_ada(client, world, people, staff, national_id="AL-1815")

    none = await query_key(client, world, staff, "national-id", "al-1815")
    unknown_slug = await query_key(client, world, staff, "passport", "X")
    by_id = await client.post(
        customers_path(world, "query"),
        json={"queryType": "RecordId", "recordId": str(uuid.uuid4())},
        headers=staff,
    )

    assert none.status_code == 404
    assert none.json()["code"] == "customer_record_not_found"
    assert unknown_slug.status_code == 404
    assert unknown_slug.json()["code"] == "field_type_not_found"
    assert by_id.status_code == 404


async def test_query_by_record_id_answers_the_record(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff)

    found = await client.post(
        customers_path(world, "query"),
        json={"queryType": "RecordId", "recordId": ada, "fieldSlug": None, "fieldValue": None},
        headers=staff,
    )
    assert found.status_code == 200
    assert found.json()["recordId"] == ada


async def test_query_needs_what_its_type_names_and_a_key_field(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    path = customers_path(world, "query")
    for body in [
        {"queryType": "RecordId"},
        {"queryType": "KeyField", "fieldSlug": "national-id"},
        {"queryType": "Name", "fieldSlug": "national-id", "fieldValue": "X"},
    ]:
        response = await client.post(path, json=body, headers=staff)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_failed"

    not_key = await query_key(client, world, staff, "first-name", "Ada")
    assert not_key.status_code == 422
    assert not_key.json()["code"] == "not_a_key_field"
    bad_value = await query_key(client, world, staff, "member-number", "seven")
    assert bad_value.status_code == 422
    assert bad_value.json()["errors"][0]["field"] == "fieldValue"


# --- roles, tenancy, idempotency ----------------------------------------------------------------


async def test_customer_routes_need_the_customers_manager_role(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    settings: Settings,
) -> None:
    ada = await create_ada(client, world, people, staff)
    booker = bearer(settings, world.client_id, [MANAGER])
    customers_only = bearer(settings, world.client_id, [CUSTOMERS_MANAGER])
    body = {"fields": people.fields(first_name="A", last_name="B")}
    calls = [
        client.post(customers_path(world), json=body, headers=booker),
        client.get(customers_path(world, ada), headers=booker),
        client.patch(customers_path(world, ada), json={"fields": []}, headers=booker),
        client.post(
            customers_path(world, "query"),
            json={"queryType": "RecordId", "recordId": ada},
            headers=booker,
        ),
        client.delete(customers_path(world, ada), headers=booker),
        client.get(
            customers_path(world, ada, "appointments"),
            params={"from": str(TODAY), "to": str(TODAY)},
            headers=customers_only,
        ),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "role_missing"


async def test_a_record_of_another_organization_answers_like_an_unknown_one(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    world: World,
    people: People,
    staff: dict[str, str],
) -> None:
    ada = await create_ada(client, world, people, staff, national_id="AL-1815")
    async with engine.begin() as conn:
        other = await builders.world(conn)
        await builders.people(conn, other)
    intruder = bearer(settings, other.client_id, [MANAGER, CUSTOMERS_MANAGER])

    responses = [
        await client.get(customers_path(other, ada), headers=intruder),
        await client.patch(customers_path(other, ada), json={"fields": []}, headers=intruder),
        await client.post(
            customers_path(other, "query"),
            json={"queryType": "RecordId", "recordId": ada},
            headers=intruder,
        ),
        await query_key(client, other, intruder, "national-id", "AL-1815"),
        await client.delete(customers_path(other, ada), headers=intruder),
        await client.get(
            customers_path(other, ada, "appointments"),
            params={"from": str(TODAY), "to": str(TODAY)},
            headers=intruder,
        ),
    ]
    for response in responses:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "customer_record_not_found"
    # and the application of one organization cannot name another's path
    stolen = await client.get(customers_path(world, ada), headers=intruder)
    assert stolen.status_code == 404
    assert stolen.json()["code"] == "application_not_found"
    assert (await client.get(customers_path(world, ada), headers=staff)).status_code == 200


async def test_idempotency_key_replays_create_and_patch(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    body = {"fields": people.fields(first_name="Ada", last_name="L", national_id="AL-1815")}
    keyed = {**staff, "Idempotency-Key": "create-ada-1"}

    first = await client.post(customers_path(world), json=body, headers=keyed)
    again = await client.post(customers_path(world), json=body, headers=keyed)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    async with engine.connect() as conn:
        assert len((await conn.execute(select(CustomerRecord.id))).all()) == 1

    other_body = {"fields": people.fields(first_name="Bob", last_name="L")}
    reused = await client.post(customers_path(world), json=other_body, headers=keyed)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"

    record_path = first.headers["location"]
    change = {"fields": [{"fieldTypeId": str(people.last_name), "value": "Byron"}]}
    patch_key = {**staff, "Idempotency-Key": "patch-ada-1"}
    patched = await client.patch(record_path, json=change, headers=patch_key)
    later = {"fields": [{"fieldTypeId": str(people.last_name), "value": "King"}]}
    assert (await client.patch(record_path, json=later, headers=staff)).status_code == 200
    replayed = await client.patch(record_path, json=change, headers=patch_key)

    assert patched.status_code == replayed.status_code == 200
    assert replayed.json() == patched.json()  # the first answer, not the current record
    assert replayed.json()["displayName"] == "Ada Byron"
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_a_refused_create_leaves_nothing_and_its_key_can_be_retried(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    await create_ada(client, world, people, staff, national_id="AL-1815")
    keyed = {**staff, "Idempotency-Key": "retry-me"}
    body = {"fields": people.fields(first_name="Bob", last_name="B", national_id="AL-1815")}

    assert (await client.post(customers_path(world), json=body, headers=keyed)).status_code == 409
    assert (await client.post(customers_path(world), json=body, headers=keyed)).status_code == 409
    assert (await query_key(client, world, staff, "national-id", "AL-1815")).json()[
        "displayName"
    ] == "Ada Lovelace"


# --- erasure --------------------------------------------------------------------------------------


async def book(
    client: httpx.AsyncClient,
    world: World,
    headers: dict[str, str],
    start: int,
    record_id: str | None,
    **more: object,
) -> httpx.Response:
    body = world.body(start, **more)
    if record_id is not None:
        body["cusotmerRecordId"] = record_id
    response = await client.post(world.appointments_path(TODAY), json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response


async def test_erasure_removes_personal_data_and_keeps_the_appointments(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    ada = await create_ada(client, world, people, staff, national_id="AL-1815", phone=PHONE)
    bob = await create_ada(client, world, people, staff, national_id="B")
    await book(client, world, staff, 600, ada, contactPhoneNumber=PHONE, contactEmail="a@b.co")
    await book(client, world, staff, 660, bob, contactPhoneNumber=PHONE)

    erased = await client.delete(customers_path(world, ada), headers=staff)

    assert erased.status_code == 204
    assert (await client.get(customers_path(world, ada), headers=staff)).status_code == 404
    assert (await query_key(client, world, staff, "national-id", "AL-1815")).status_code == 404
    assert (await client.delete(customers_path(world, ada), headers=staff)).status_code == 404
    listed = (await client.get(world.appointments_path(TODAY), headers=staff)).json()
    assert len(listed) == 2
    by_start = {a["appointment"]["start"]: a for a in listed}
    assert by_start[600]["customer"] is None
    assert by_start[600]["contactPhoneNumber"] is None
    assert by_start[600]["contactEmail"] is None
    assert by_start[660]["contactPhoneNumber"] == PHONE_E164  # another record's: untouched
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(CustomerRecord).where(CustomerRecord.id == uuid.UUID(ada)))
        ).one()
        assert (row.display_name, row.fields) == (None, {})
        assert row.erased_at is not None
        keys = (await conn.execute(select(CustomerKey.record_id))).scalars().all()
        assert keys == [uuid.UUID(bob)]
        kept = (
            await conn.execute(
                select(Appointment.customer_record_id).where(Appointment.start_minute == 600)
            )
        ).scalar_one()
        assert kept == uuid.UUID(ada)  # the statistics still count it
    # the key value is free again
    assert (
        await create(
            client,
            world,
            staff,
            people.fields(first_name="A", last_name="L", national_id="AL-1815"),
        )
    ).status_code == 201


async def test_an_erased_record_cannot_be_booked_or_patched(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff)
    await client.delete(customers_path(world, ada), headers=staff)

    booking = await client.post(
        world.appointments_path(TODAY), json=world.body(600, customerRecordId=ada), headers=staff
    )
    assert booking.status_code == 404
    assert (await patch(client, world, staff, ada, [(people.vip, True)])).status_code == 404


# --- bookings and the customer's appointments ---------------------------------------------------


async def test_a_booking_shows_the_records_current_display_name(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff)
    booked = await book(client, world, staff, 600, ada)
    assert booked.json()["customer"]["displayName"] == "Ada Lovelace"

    await patch(client, world, staff, ada, [(people.last_name, "King")])

    listed = (await client.get(world.appointments_path(TODAY), headers=staff)).json()
    assert listed[0]["customer"]["displayName"] == "Ada King"


async def test_an_appointments_customer_names_the_organizations_customers_table(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        table_id = str(await builders.customers_table_id(conn, world.organization_id))
    ada = await create_ada(client, world, people, staff)
    booked = (await book(client, world, staff, 600, ada)).json()
    listed = (await client.get(world.appointments_path(TODAY), headers=staff)).json()
    read = await client.get(
        f"/{world.application_id}/appointments/{booked['caseId']}", headers=staff
    )
    across = await client.get(
        customers_path(world, ada, "appointments"),
        params={"from": str(TODAY), "to": str(TODAY)},
        headers=staff,
    )

    expected = {"dataTableId": table_id, "recordId": ada, "displayName": "Ada Lovelace"}
    assert booked["customer"] == expected
    assert listed[0]["customer"] == expected
    assert read.json()["customer"] == expected
    assert across.json()[0]["customer"] == expected


async def test_the_customers_appointments_across_calendars_by_start_time(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        other_service = await builders.service(conn, world.organization_id, ticket_prefix="B")
        other_type = await builders.service_type(conn, other_service)
        await builders.calendar_unit(conn, other_service)
        await builders.calendar_unit(conn, world.service_id, cu_index=1)
    other = World(
        world.organization_id, world.application_id, world.client_id, other_service, other_type
    )
    ada = await create_ada(client, world, people, staff)
    bob = await create_ada(client, world, people, staff)
    tomorrow = TODAY.fromordinal(TODAY.toordinal() + 1)
    later = TODAY.fromordinal(TODAY.toordinal() + 9)
    for w, day, start, cu, who in [
        (world, tomorrow, 900, 0, ada),
        (other, TODAY, 840, 0, ada),
        (world, TODAY, 600, 1, ada),
        (world, TODAY, 600, 0, bob),
        (world, later, 600, 0, ada),
    ]:
        response = await client.post(
            w.appointments_path(day, cu), json=w.body(start, customerRecordId=who), headers=staff
        )
        assert response.status_code == 201, response.text

    response = await client.get(
        customers_path(world, ada, "appointments"),
        params={"from": str(TODAY), "to": str(tomorrow)},
        headers=staff,
    )

    assert response.status_code == 200, response.text
    listed = response.json()
    assert [(a["appointment"]["date"][:10], a["appointment"]["start"]) for a in listed] == [
        (str(TODAY), 600),
        (str(TODAY), 840),
        (str(tomorrow), 900),
    ]
    assert {a["customer"]["recordId"] for a in listed} == {ada}
    assert [a["appointment"]["serviceId"] for a in listed][:2] == [
        str(world.service_id),
        str(other_service),
    ]
    assert set(listed[0]) >= {"caseId", "ticket", "status", "contactPhoneNumber"}


async def test_the_appointments_range_is_checked(
    client: httpx.AsyncClient, world: World, people: People, staff: dict[str, str]
) -> None:
    ada = await create_ada(client, world, people, staff)
    path = customers_path(world, ada, "appointments")

    backwards = await client.get(
        path, params={"from": "2026-12-02", "to": "2026-12-01"}, headers=staff
    )
    too_long = await client.get(
        path, params={"from": "2026-01-01", "to": "2027-12-01"}, headers=staff
    )
    missing = await client.get(path, params={"from": "2026-12-01"}, headers=staff)
    unknown = await client.get(
        customers_path(world, uuid.uuid4(), "appointments"),
        params={"from": "2026-12-01", "to": "2026-12-01"},
        headers=staff,
    )

    assert backwards.status_code == too_long.status_code == missing.status_code == 422
    assert backwards.json()["code"] == "invalid_date_range"
    assert unknown.status_code == 404
    empty = await client.get(path, params={"from": "2026-12-01", "to": "2026-12-01"}, headers=staff)
    assert empty.json() == []


# --- personal data ------------------------------------------------------------------------------


async def test_no_field_value_phone_or_email_in_logs_or_error_texts(
    client: httpx.AsyncClient,
    world: World,
    people: People,
    staff: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {
        "first_name": "Zebediah",
        "last_name": "Quixotic",
        "phone": PHONE,
        "email": "zeb@example.com",
        "national_id": "NID-98765",
    }
    record_id = await create_ada(client, world, people, staff, **{**secrets, "first_name": "Ada"})
    answers = [
        await create(client, world, staff, people.fields(**secrets)),  # 409: the key is taken
        await create(
            client,
            world,
            staff,
            people.fields(
                first_name="Zebediah",
                phone="202-555-01439999",
                email="zeb@@example.com",
                member_number="Quixotic",
                tier="Quixotic",
            ),
        ),  # 422
        await patch(client, world, staff, record_id, [(people.national_id, "NID-98765")]),
        await patch(client, world, staff, record_id, [(people.email, "zeb@@example.com")]),
        await query_key(client, world, staff, "national-id", "NID-98765"),
        await query_key(client, world, staff, "national-id", "Quixotic"),  # 404
        await query_key(client, world, staff, "member-number", "Quixotic"),  # 422
    ]
    assert [a.status_code for a in answers] == [409, 422, 200, 422, 200, 404, 422]
    forbidden = ("zebediah", "quixotic", "5550143", "555-0143", "zeb@", "nid-98765")
    for answer in answers:
        if answer.status_code >= 400:
            for secret in forbidden:
                assert secret not in answer.text.lower(), (secret, answer.text)
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), *(str(value) for value in record.__dict__.values())]
        ).lower()
        for secret in forbidden:
            assert secret not in text, (secret, record.__dict__)
