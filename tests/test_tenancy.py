"""Tenant safety: one application's token never reaches another organization's data, and the
404 it gets says nothing about whether the resource exists."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.domain import CalendarDay
from booking.settings import Settings
from booking.store.db import Database
from tests import builders
from tests.builders import World
from tests.conftest import TODAY, bearer
from tests.kit import assert_problem

TOMORROW = TODAY + timedelta(days=1)


@dataclass(frozen=True)
class Ids:
    application_id: uuid.UUID
    service_id: uuid.UUID
    service_type_id: uuid.UUID
    case_id: uuid.UUID


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None


def calls(ids: Ids) -> dict[str, Call]:
    """Every route, aimed at the given ids."""
    app, svc = ids.application_id, ids.service_id
    calendar = f"/{app}/calendars/{svc}/{TOMORROW}"
    unit = f"{calendar}/0"
    body = {"serviceTypeId": str(ids.service_type_id), "startTime": 600, "channel": "FaceToFace"}
    return {
        "vacancies": Call("GET", f"{unit}/vacancies", {"serviceTypeId": str(ids.service_type_id)}),
        "calendars": Call("GET", calendar),
        "list": Call("GET", f"{unit}/appointments"),
        "book": Call("POST", f"{unit}/appointments", json=body),
        "get": Call("GET", f"/{app}/appointments/{ids.case_id}"),
        "cancel": Call("DELETE", f"{unit}/appointments/{ids.case_id}"),
        "services": Call("GET", f"/{app}/services"),
        "field-types": Call("GET", f"/{app}/field-types"),
        "tags": Call("GET", f"/{app}/tags"),
        "languages": Call("GET", f"/{app}/languages"),
    }


CALENDAR_ROUTES = ["vacancies", "calendars", "list", "book", "cancel"]
ALL_ROUTES = [*CALENDAR_ROUTES, "get", "services", "field-types", "tags", "languages"]


async def send(client: httpx.AsyncClient, call: Call, auth: dict[str, str]) -> httpx.Response:
    return await client.request(
        call.method, call.path, params=call.params, json=call.json, headers=auth
    )


@dataclass(frozen=True)
class Tenants:
    a: World
    a_auth: dict[str, str]
    a_case_id: uuid.UUID
    b: World
    b_auth: dict[str, str]
    b_case_id: uuid.UUID

    def ids_a(self, **changes: uuid.UUID) -> Ids:
        ids = Ids(self.a.application_id, self.a.service_id, self.a.service_type_id, self.a_case_id)
        return Ids(**{**ids.__dict__, **changes})

    def ids_b(self) -> Ids:
        return Ids(self.b.application_id, self.b.service_id, self.b.service_type_id, self.b_case_id)


def random_ids(ids: Ids, *fields: str) -> Ids:
    return Ids(**{**ids.__dict__, **{f: uuid.uuid4() for f in fields}})


@pytest.fixture
async def tenants(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, world: World
) -> Tenants:
    """A (the default world) and B (another organization, set up the same way), each with one
    appointment tomorrow at 09:00 and a tag, a field type and a customer of its own."""
    async with engine.begin() as conn:
        b = await builders.world(conn)
        for w in (world, b):
            await builders.tag(conn, w.organization_id, name=f"tag {w.organization_id}")
            await builders.field_type(conn, w.organization_id, name=f"field {w.organization_id}")
    auth_a = bearer(settings, world.client_id)
    auth_b = bearer(settings, b.client_id)
    case_ids = []
    for w, auth in ((world, auth_a), (b, auth_b)):
        response = await client.post(w.appointments_path(TOMORROW), json=w.body(540), headers=auth)
        assert response.status_code == 201, response.text
        case_ids.append(uuid.UUID(response.json()["caseId"]))
    return Tenants(world, auth_a, case_ids[0], b, auth_b, case_ids[1])


async def assert_same_404(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    real: Call,
    fake: Call,
    code: str,
) -> None:
    """The 404 for the real (other tenant's) ids is byte-for-byte the one for made-up ids."""
    real_response = await send(client, real, auth)
    fake_response = await send(client, fake, auth)
    assert_problem(real_response, 404, code)
    assert_problem(fake_response, 404, code)
    assert real_response.content == fake_response.content
    assert real_response.headers["content-type"] == fake_response.headers["content-type"]


async def assert_b_untouched(client: httpx.AsyncClient, t: Tenants) -> None:
    response = await client.get(
        f"/{t.b.application_id}/appointments/{t.b_case_id}", headers=t.b_auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Planned"
    listed = await client.get(t.b.appointments_path(TOMORROW), headers=t.b_auth)
    assert [a["caseId"] for a in listed.json()] == [str(t.b_case_id)]


async def test_both_tenants_reach_their_own_data(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    """The ids used below are real: each owner gets 200 on every read route."""
    for ids, auth in ((tenants.ids_a(), tenants.a_auth), (tenants.ids_b(), tenants.b_auth)):
        for name in ["vacancies", "calendars", "list", "get", "services", "tags", "languages"]:
            response = await send(client, calls(ids)[name], auth)
            assert response.status_code == 200, (name, response.text)


@pytest.mark.parametrize("route", CALENDAR_ROUTES)
async def test_other_tenants_service_in_own_application_path_is_404_service_not_found(
    client: httpx.AsyncClient, tenants: Tenants, route: str
) -> None:
    b = tenants.ids_b()
    real = tenants.ids_a(
        service_id=b.service_id, service_type_id=b.service_type_id, case_id=b.case_id
    )
    fake = random_ids(real, "service_id", "service_type_id", "case_id")
    await assert_same_404(
        client, tenants.a_auth, calls(real)[route], calls(fake)[route], "service_not_found"
    )
    await assert_b_untouched(client, tenants)


async def test_other_tenants_case_id_is_404_appointment_not_found(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    real = tenants.ids_a(case_id=tenants.b_case_id)
    fake = random_ids(real, "case_id")
    for route in ["get", "cancel"]:  # cancel: through A's own calendar path
        await assert_same_404(
            client, tenants.a_auth, calls(real)[route], calls(fake)[route], "appointment_not_found"
        )
    await assert_b_untouched(client, tenants)


async def test_other_tenants_service_type_is_404_service_type_not_found(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    real = tenants.ids_a(service_type_id=tenants.b.service_type_id)
    fake = random_ids(real, "service_type_id")
    for route in ["vacancies", "book"]:
        await assert_same_404(
            client, tenants.a_auth, calls(real)[route], calls(fake)[route], "service_type_not_found"
        )


@pytest.mark.parametrize("route", ALL_ROUTES)
async def test_other_tenants_application_id_is_404_application_not_found(
    client: httpx.AsyncClient, tenants: Tenants, route: str
) -> None:
    real = tenants.ids_b()
    fake = random_ids(real, "application_id")
    await assert_same_404(
        client, tenants.a_auth, calls(real)[route], calls(fake)[route], "application_not_found"
    )
    await assert_b_untouched(client, tenants)


@pytest.mark.parametrize("route", ALL_ROUTES)
async def test_another_application_of_the_same_organization_cannot_use_its_path(
    client: httpx.AsyncClient, tenants: Tenants, settings: Settings, engine: AsyncEngine, route: str
) -> None:
    """The token must be the path's application's own, even within one organization."""
    async with engine.begin() as conn:
        _, sibling_client = await builders.application(conn, tenants.a.organization_id)
    response = await send(client, calls(tenants.ids_a())[route], bearer(settings, sibling_client))
    assert_problem(response, 404, "application_not_found")


async def test_customer_filter_with_other_tenants_customer_lists_nothing(
    client: httpx.AsyncClient, tenants: Tenants, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        stranger = await builders.customer(conn, tenants.b.organization_id)
    response = await client.get(
        tenants.a.appointments_path(TOMORROW),
        params={"customerRecordId": str(stranger)},
        headers=tenants.a_auth,
    )
    assert response.status_code == 200
    assert response.json() == []


async def test_lists_show_only_the_own_organizations_items(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    for world, auth, other in (
        (tenants.a, tenants.a_auth, tenants.b),
        (tenants.b, tenants.b_auth, tenants.a),
    ):
        services = (await client.get(f"/{world.application_id}/services", headers=auth)).json()
        assert [s["id"] for s in services] == [str(world.service_id)]
        tags = (await client.get(f"/{world.application_id}/tags", headers=auth)).json()
        assert [t["name"] for t in tags] == [f"tag {world.organization_id}"]
        fields = (await client.get(f"/{world.application_id}/field-types", headers=auth)).json()
        assert [f["name"] for f in fields] == [f"field {world.organization_id}"]
        assert str(other.organization_id) not in str((services, tags, fields))


@pytest.mark.parametrize(
    ("route", "headers"),
    [("cancel", {}), ("cancel", {"Idempotency-Key": "k-1"}), ("book", {"Idempotency-Key": "k-2"})],
)
@pytest.mark.committed  # holds a lock on one connection while the app uses another
async def test_another_tenants_calendar_day_is_refused_without_waiting_for_its_lock(
    client: httpx.AsyncClient,
    tenants: Tenants,
    db: Database,
    route: str,
    headers: dict[str, str],
) -> None:
    """The service is checked against the caller's organization before any lock is taken: a
    stranger's calendar-day, even while its owner holds the lock, answers 404 at once."""
    b_day = CalendarDay(tenants.b.service_id, 0, TOMORROW)
    call = calls(tenants.ids_a(service_id=tenants.b.service_id))[route]
    async with db.calendar_day(b_day):  # B is writing that calendar-day
        async with asyncio.timeout(2):
            response = await send(client, call, {**tenants.a_auth, **headers})
    assert_problem(response, 404, "service_not_found")
