"""At most a share of a process's database places held by one tenant at once, so a flood from
one registered application queues behind its own requests instead of taking every connection
from the others.

The tenant travels in a ContextVar that the API layer sets once the caller is authenticated;
work without a tenant (readiness, configuration loads, purges) is not limited here. A tenant
has an entry only while it holds or waits for a place, so memory is bounded by the requests in
flight, not by the number of tenants ever seen."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

current_tenant: ContextVar[uuid.UUID | None] = ContextVar("current_tenant", default=None)


@dataclass(slots=True)
class _TenantGate:
    places: asyncio.Semaphore
    users: int = field(default=0)  # holding a place or waiting for one


class TenantShare:
    def __init__(self, places: int, share: float) -> None:
        """`share` of `places` (at least one place) per tenant."""
        self.places_per_tenant = max(1, math.floor(places * share))
        self._gates: dict[uuid.UUID, _TenantGate] = {}

    @asynccontextmanager
    async def hold(self, wait_s: float) -> AsyncIterator[None]:
        """One of the current tenant's places, waited for at most `wait_s` (TimeoutError)."""
        tenant = current_tenant.get()
        if tenant is None:
            yield
            return
        gate = self._gates.get(tenant)
        if gate is None:
            gate = self._gates[tenant] = _TenantGate(asyncio.Semaphore(self.places_per_tenant))
        gate.users += 1
        try:
            if gate.places.locked():
                async with asyncio.timeout(wait_s):
                    await gate.places.acquire()
            else:
                await gate.places.acquire()  # a free place: no wait, so no timer to set
            try:
                yield
            finally:
                gate.places.release()
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[tenant]

    def tenants_in_flight(self) -> int:
        return len(self._gates)
