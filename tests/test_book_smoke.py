from __future__ import annotations

import httpx

from tests.builders import World
from tests.conftest import TODAY


async def test_booking_a_vacant_slot_answers_201_with_the_appointment(
    client: httpx.AsyncClient, world: World, auth: dict[str, str]
) -> None:
    response = await client.post(world.appointments_path(TODAY), json=world.body(570), headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["appointment"]["start"] == 570
    assert body["appointment"]["timeLocal"] == "2026-12-01T09:30:00"
    assert body["appointment"]["timeUtc"] == "2026-12-01T09:30:00Z"
    assert body["ticket"] == {"prefix": "A", "suffix": None, "number": 1}
    assert response.headers["location"] == f"/{world.application_id}/appointments/{body['caseId']}"
    again = await client.post(world.appointments_path(TODAY), json=world.body(570), headers=auth)
    assert again.status_code == 409, again.text
    print(again.json())
