"""Whose token it is and what it may do: the registered application in the path, its client id
claim, and the role, granted in the configuration and (unless JWT_ROLES_CLAIM is empty)
carried by the token."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.api.auth import TokenVerifier, authorize
from booking.service.catalog import ConfigCache
from booking.service.errors import Forbidden
from booking.service.roles import Role
from booking.settings import Settings
from booking.store.db import Database
from booking.store.loader import ConfigFileError, load_file, parse_config
from booking.store.models import RegisteredApplication
from tests import builders
from tests.builders import MANAGER, World
from tests.conftest import ROOT, TEST_SECRET, TODAY, FakeClock, bearer
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


# --- the role: granted in the configuration and carried by the token ---------------------------


@pytest.mark.parametrize(
    ("roles_claim", "granted", "claimed", "status"),
    [
        ("roles", True, True, 200),
        ("roles", True, False, 403),
        ("roles", False, True, 403),  # the token's claim alone no longer suffices
        ("roles", False, False, 403),
        ("", True, True, 200),  # empty JWT_ROLES_CLAIM: the configuration alone decides
        ("", True, False, 200),
        ("", False, True, 403),
        ("", False, False, 403),
    ],
)
async def test_the_role_must_be_granted_in_the_configuration_and_claimed_unless_the_claim_is_off(
    make_client: MakeClient,
    world: World,
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    roles_claim: str,
    granted: bool,
    claimed: bool,
    status: int,
) -> None:
    async with engine.begin() as conn:
        app_id, client_id = await builders.application(
            conn, world.organization_id, roles=[MANAGER] if granted else []
        )
    caller = replace(world, application_id=app_id, client_id=client_id)
    monkeypatch.setenv("JWT_ROLES_CLAIM", roles_claim)  # as an operator writes it
    custom = Settings(jwt_dev_secret=TEST_SECRET, config_cache_ttl_s=0, data_dir=tmp_path)
    assert custom.jwt_roles_claim == roles_claim
    token = as_bearer(dev_token(custom, client_id, roles=[MANAGER] if claimed else []))

    async with make_client(custom) as client:
        listing = await client.get(services_path(caller), headers=token)
        booking = await client.post(
            caller.appointments_path(TODAY), json=caller.body(570), headers=token
        )

    if status == 200:
        assert listing.status_code == 200, listing.text
        assert booking.status_code == 201, booking.text
    else:
        assert_problem(listing, 403, "role_missing")
        assert_problem(booking, 403, "role_missing")


async def test_the_demo_read_only_application_answers_403_even_when_its_token_claims_the_role(
    engine: AsyncEngine, client: httpx.AsyncClient, settings: Settings
) -> None:
    """examples/demo.yaml promises 403 for `demo-readonly` (roles: [])."""
    summary = await load_file(engine, ROOT / "examples" / "demo.yaml")
    readonly = next(a for a in summary.applications if a[1] == "demo-readonly")
    assert readonly[3] == ()
    service_id, _ = summary.services[0]
    path = f"/{readonly[0]}/calendars/{service_id}/2026-12-02/0/appointments"

    response = await client.post(
        path,
        json={"serviceTypeId": str(uuid.uuid4()), "startTime": 570, "channel": "FaceToFace"},
        headers=bearer(settings, "demo-readonly", [MANAGER]),
    )

    problem = assert_problem(response, 403, "role_missing")
    assert "application is not granted" in problem["detail"]


async def test_a_role_removed_in_the_configuration_is_refused_within_the_cache_ttl(
    engine: AsyncEngine, db: Database, world: World, settings: Settings
) -> None:
    clock = Ticker()
    cache = ConfigCache(db, ttl_s=10, monotonic=clock)
    verifier = TokenVerifier(settings)
    authorization = bearer(settings, world.client_id)["Authorization"]
    manager = Role.APPOINTMENTS_MANAGER
    await authorize(verifier, cache, authorization, world.application_id, manager)

    async with engine.begin() as conn:
        await conn.execute(
            update(RegisteredApplication)
            .where(RegisteredApplication.id == world.application_id)
            .values(roles=[])
        )
    clock.now += 4  # within half the TTL: the cached configuration still grants it
    await authorize(verifier, cache, authorization, world.application_id, manager)
    clock.now += 6  # the TTL has passed
    with pytest.raises(Forbidden) as refused:
        await authorize(verifier, cache, authorization, world.application_id, manager)

    assert refused.value.code == "role_missing"
    await cache.close()


def test_the_loader_refuses_a_role_name_it_does_not_know() -> None:
    document = {
        "organizations": [
            {
                "id": str(uuid.uuid4()),
                "name": "Typo Org",
                "timeZone": "Europe/London",
                "supportedLanguages": ["en"],
                "defaultLanguage": "en",
                "defaultPhoneRegion": "GB",
                "applications": [
                    {
                        "id": str(uuid.uuid4()),
                        "clientId": "typo",
                        "name": "Typo",
                        "roles": ["Appointment Manager"],
                    }
                ],
            }
        ]
    }

    with pytest.raises(ConfigFileError) as refused:
        parse_config(json.dumps(document))  # JSON is YAML

    assert "applications[0].roles[0]" in str(refused.value)
    assert "Appointments Manager" in str(refused.value)  # names the roles it knows


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
