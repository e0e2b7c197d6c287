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
    tenant: uuid.UUID
    places: asyncio.Semaphore
    users: int = field(default=0)  # holding a place or waiting for one


class TenantShare:
    def __init__(self, places: int, share: float) -> None:
        """`share` of `places` (at least one place) per tenant."""
        self.places_per_tenant = max(1, math.floor(places * share))
        self._gates: dict[uuid.UUID, _TenantGate] = {}

    async def take(self, wait_s: float) -> _TenantGate | None:
        """One of the current tenant's places, waited for at most `wait_s` (TimeoutError);
        hand what it answers to `give_back`. None: work without a tenant, not limited."""
        tenant = current_tenant.get()
        if tenant is None:
            return None
        gate = self._gates.get(tenant)
        if gate is None:
            gate = self._gates[tenant] = _TenantGate(
                tenant, asyncio.Semaphore(self.places_per_tenant)
            )
        gate.users += 1
        try:
            if gate.places.locked():
                async with asyncio.timeout(wait_s):
                    await gate.places.acquire()
            else:
                await gate.places.acquire()  # a free place: no wait, so no timer to set
        except BaseException:
            self._leave(gate)
            raise
        return gate

    def give_back(self, gate: _TenantGate | None) -> None:
        if gate is not None:
            gate.places.release()
            self._leave(gate)

    def _leave(self, gate: _TenantGate) -> None:
        gate.users -= 1
        if gate.users == 0:
            del self._gates[gate.tenant]

    @asynccontextmanager
    async def hold(self, wait_s: float) -> AsyncIterator[None]:
        """`take` and `give_back` around a block."""
        gate = await self.take(wait_s)
        try:
            yield
        finally:
            self.give_back(gate)

    def tenants_in_flight(self) -> int:
        return len(self._gates)
