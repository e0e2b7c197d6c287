"""Whose token it is and what it may do: the registered application in the path, its client id
claim, and the role, granted in the configuration and (unless JWT_ROLES_CLAIM is empty)
carried by the token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.settings import Settings
from tests import builders
from tests.builders import MANAGER, World
from tests.conftest import TEST_SECRET, TODAY, FakeClock, bearer
from tests.jwt_kit import (
    MakeClient,
    as_bearer,
    assert_problem,
    client_factory,
    dev_token,
    services_path,
)


@pytest.fixture
def make_client(database_url: str, clock: FakeClock, engine: AsyncEngine) -> MakeClient:
    return client_factory(database_url, clock)


async def test_token_of_another_registered_application_answers_404_like_an_unknown_one(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        _, same_org_client = await builders.application(conn, world.organization_id)
        other_org = await builders.organization(conn, name="Other Org")
        _, other_org_client = await builders.application(conn, other_org)
    unknown = await client.get(
        "/00000000-0000-4000-8000-000000000000/services", headers=bearer(settings, world.client_id)
    )
    unknown_problem = assert_problem(unknown, 404, "application_not_found")

    for intruder in (same_org_client, other_org_client):
        for response in (
            await client.get(services_path(world), headers=bearer(settings, intruder)),
            await client.post(
                world.appointments_path(TODAY),
                json=world.body(570),
                headers=bearer(settings, intruder),
            ),
        ):
            assert assert_problem(response, 404, "application_not_found") == unknown_problem


async def test_unknown_application_id_answers_404_application_not_found(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.get("/7c9e6679-7425-40de-944b-e07fc1f90ae7/services", headers=auth)

    assert_problem(response, 404, "application_not_found")


async def test_token_without_any_client_id_claim_answers_404(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, azp=None)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_problem(response, 404, "application_not_found")


async def test_disabled_application_answers_403_application_disabled(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        app_id, client_id = await builders.application(conn, world.organization_id, enabled=False)

    response = await client.get(f"/{app_id}/services", headers=bearer(settings, client_id))

    assert_problem(response, 403, "application_disabled")


async def test_token_without_the_manager_role_answers_403_role_missing(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    for roles in ([], ["Appointments Viewer"], ["appointments manager"]):
        headers = bearer(settings, world.client_id, roles)

        listing = await client.get(services_path(world), headers=headers)
        booking = await client.post(
            world.appointments_path(TODAY), json=world.body(570), headers=headers
        )

        assert_problem(listing, 403, "role_missing")
        assert_problem(booking, 403, "role_missing")


async def test_roles_claim_as_a_single_string_is_accepted(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    token = dev_token(settings, world.client_id, roles=MANAGER)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("claim", ["azp", "appid", "client_id"])
async def test_client_id_may_come_from_each_default_claim(
    client: httpx.AsyncClient, world: World, settings: Settings, claim: str
) -> None:
    overrides: dict[str, Any] = {"azp": None, "sub": "someone", claim: world.client_id}
    token = dev_token(settings, world.client_id, **overrides)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert response.status_code == 200, response.text


async def test_first_configured_client_id_claim_present_decides(
    client: httpx.AsyncClient, world: World, settings: Settings, engine: AsyncEngine
) -> None:
    """`azp` comes first: another client's `azp` is not rescued by our `appid`."""
    async with engine.begin() as conn:
        _, other_client = await builders.application(conn, world.organization_id)
    token = dev_token(settings, other_client, appid=world.client_id)

    response = await client.get(services_path(world), headers=as_bearer(token))

    assert_problem(response, 404, "application_not_found")


async def test_client_id_claims_are_configurable(
    make_client: MakeClient, world: World, settings: Settings
) -> None:
    custom = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=settings.data_dir,
        jwt_client_id_claims="cid, oid",  # as the env variable says it
    )
    assert custom.jwt_client_id_claims == ["cid", "oid"]

    async with make_client(custom) as client:
        by_azp = await client.get(
            services_path(world), headers=as_bearer(dev_token(custom, world.client_id))
        )
        by_cid = await client.get(
            services_path(world),
            headers=as_bearer(dev_token(custom, world.client_id, azp=None, cid=world.client_id)),
        )

    assert_problem(by_azp, 404, "application_not_found")
    assert by_cid.status_code == 200, by_cid.text


async def test_roles_claim_name_is_configurable(
    make_client: MakeClient, world: World, settings: Settings
) -> None:
    custom = Settings(
        jwt_dev_secret=TEST_SECRET,
        config_cache_ttl_s=0,
        data_dir=settings.data_dir,
        jwt_roles_claim="app_roles",
    )

    async with make_client(custom) as client:
        by_roles = await client.get(
            services_path(world), headers=as_bearer(dev_token(custom, world.client_id))
        )
        by_app_roles = await client.get(
            services_path(world),
            headers=as_bearer(dev_token(custom, world.client_id, roles=None, app_roles=[MANAGER])),
        )

    assert_problem(by_roles, 403, "role_missing")
    assert by_app_roles.status_code == 200, by_app_roles.text
