"""Discovery: the services, field types, tags and languages a booking body can name."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import World
from tests.conftest import bearer
from tests.kit import assert_problem

ROUTES = ["services", "field-types", "tags", "languages"]


async def get(client: httpx.AsyncClient, world: World, auth: dict[str, str], route: str) -> Any:
    response = await client.get(f"/{world.application_id}/{route}", headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def test_services_list_types_units_flags_and_booking_window(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        video = await builders.service_type(
            conn, world.service_id, duration=15, channels=["Video", "Phone"], name="Call back"
        )
        await builders.calendar_unit(
            conn, world.service_id, cu_index=1, capacity=3, slot_minutes=15, time_zone="Asia/Tokyo"
        )
        licence = await builders.service(
            conn,
            world.organization_id,
            name="Driving licence",
            requires_customer=True,
            requires_phone=True,
            requires_email=True,
            ticket_prefix="D",
            booking_window_days=None,
        )
        licence_type = await builders.service_type(conn, licence, duration=45)

    assert await get(client, world, auth, "services") == [
        {
            "id": str(licence),
            "name": "Driving licence",
            "ticketPrefix": "D",
            "isCustomerRequired": True,
            "isPhoneNumberRequired": True,
            "isEmailRequired": True,
            "bookingWindowDays": None,
            "serviceTypes": [
                {
                    "id": str(licence_type),
                    "name": "45-minute visit",
                    "duration": 45,
                    "channels": ["FaceToFace", "Video", "Phone"],
                }
            ],
            "calendarUnits": [],
        },
        {
            "id": str(world.service_id),
            "name": "Passport renewal",
            "ticketPrefix": "A",
            "isCustomerRequired": False,
            "isPhoneNumberRequired": False,
            "isEmailRequired": False,
            "bookingWindowDays": 60,
            "serviceTypes": [
                {
                    "id": str(world.service_type_id),
                    "name": "30-minute visit",
                    "duration": 30,
                    "channels": ["FaceToFace", "Video", "Phone"],
                },
                {
                    "id": str(video),
                    "name": "Call back",
                    "duration": 15,
                    "channels": ["Video", "Phone"],
                },
            ],
            "calendarUnits": [
                {
                    "cuIndex": 0,
                    "capacity": 1,
                    "slotMinutes": 10,
                    "timeZoneId": "GMT Standard Time",
                    "ianaTimeZoneId": "Europe/London",
                },
                {
                    "cuIndex": 1,
                    "capacity": 3,
                    "slotMinutes": 15,
                    "timeZoneId": "Tokyo Standard Time",
                    "ianaTimeZoneId": "Asia/Tokyo",
                },
            ],
        },
    ]


async def test_listed_ids_are_the_ones_a_booking_accepts(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    service = (await get(client, world, auth, "services"))[0]
    unit = service["calendarUnits"][0]
    service_type = service["serviceTypes"][0]
    response = await client.post(
        f"/{world.application_id}/calendars/{service['id']}/2026-12-02/{unit['cuIndex']}/appointments",
        json={
            "serviceTypeId": service_type["id"],
            "startTime": 600,
            "channel": service_type["channels"][0],
        },
        headers=auth,
    )
    assert response.status_code == 201, response.text


async def test_field_types_list_kind_options_and_required(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        reason = await builders.field_type(
            conn,
            world.organization_id,
            kind="choice",
            name="Reason",
            options=["New", "Renewal"],
            required=True,
        )
        age = await builders.field_type(conn, world.organization_id, kind="number", name="Age")
    assert await get(client, world, auth, "field-types") == [
        {"id": str(age), "name": "Age", "kind": "number", "options": [], "required": False},
        {
            "id": str(reason),
            "name": "Reason",
            "kind": "choice",
            "options": ["New", "Renewal"],
            "required": True,
        },
    ]


async def test_tags_are_listed_by_name(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        vip = await builders.tag(conn, world.organization_id, name="VIP")
        accessible = await builders.tag(conn, world.organization_id, name="Accessible")
    assert await get(client, world, auth, "tags") == [
        {"id": str(accessible), "name": "Accessible"},
        {"id": str(vip), "name": "VIP"},
    ]


async def test_languages_are_the_organizations_default_and_supported(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    assert await get(client, world, auth, "languages") == {
        "defaultLanguage": "en",
        "supportedLanguages": ["en", "fr", "he"],
    }


async def test_organization_without_configuration_lists_nothing(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        org = await builders.organization(conn)
        app_id, client_id = await builders.application(conn, org)
    auth = bearer(settings, client_id)
    for route in ["services", "field-types", "tags"]:
        response = await client.get(f"/{app_id}/{route}", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json() == []


@pytest.mark.parametrize("route", ROUTES)
async def test_discovery_without_the_role_is_403(
    client: httpx.AsyncClient, world: World, settings: Settings, route: str
) -> None:
    response = await client.get(
        f"/{world.application_id}/{route}", headers=bearer(settings, world.client_id, roles=[])
    )
    assert_problem(response, 403, "role_missing")


@pytest.mark.parametrize("route", ROUTES)
async def test_discovery_without_a_token_is_401(
    client: httpx.AsyncClient, world: World, route: str
) -> None:
    response = await client.get(f"/{world.application_id}/{route}")
    assert_problem(response, 401, "token_missing")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ROUTES)
async def test_discovery_of_a_disabled_application_is_403(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, route: str
) -> None:
    async with engine.begin() as conn:
        org = await builders.organization(conn)
        app_id, client_id = await builders.application(conn, org, enabled=False)
    response = await client.get(f"/{app_id}/{route}", headers=bearer(settings, client_id))
    assert_problem(response, 403, "application_disabled")


async def test_other_organizations_items_never_appear(
    client: httpx.AsyncClient, world: World, auth: dict[str, str], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        other = await builders.world(conn)
        await builders.tag(conn, other.organization_id, name="Theirs")
        await builders.field_type(conn, other.organization_id, name="Theirs")
        await builders.service(conn, other.organization_id, name="Theirs")
        await builders.tag(conn, world.organization_id, name="Ours")
    services = await get(client, world, auth, "services")
    assert [s["id"] for s in services] == [str(world.service_id)]
    assert await get(client, world, auth, "field-types") == []
    assert [t["name"] for t in await get(client, world, auth, "tags")] == ["Ours"]
    assert str(other.service_id) not in str(await get(client, world, auth, "services"))
