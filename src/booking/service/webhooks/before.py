"""beforeBookAppointment: the organization's receiver sees a booking before it is made, and may
change its `fields`, `tagIds`, customer, service type or channel, or cancel it.

Called in the booking request, before the calendar-day's lock is taken (never while holding
it), only for a booking that passed every rule that needs no database; within the
organization's timeout (`beforeHookTimeoutMs`, connect to last byte). The changed booking is
then checked by every rule again, like any other. The body is afterBookAppointment's (with
the `caseId` the case will get, `ticket.number` null, no `eventSequence`), signed the same way.
The answer: 2xx with no body (book as it is), or a JSON object with any of `fields`,
`tagIds`, `customerRecordId`, `serviceTypeId`, `channel` (each replaces the booking's), or
`cancel: true` and a `message` (422 `cancelled_by_webhook` with that message). A timeout, a
non-2xx answer, an answer too long or not of that shape: 503 `webhook_unavailable`, or, when
the organization says `onBeforeHookFailure: book`, the booking goes on unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from booking.domain import Channel
from booking.service import rules
from booking.service.catalog import Catalog
from booking.service.commands import BookAppointment
from booking.service.errors import ReceiverUnavailable, RuleViolation
from booking.service.webhooks import addresses, events, signing
from booking.service.webhooks.delivery import hook_url
from booking.settings import Settings
from booking.store.appointments import inserted
from booking.store.db import uuid_text

BEFORE_BOOK = "beforeBookAppointment"
log = logging.getLogger("booking.webhooks")


class BeforeBookAnswer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    fields: dict[uuid.UUID, Any] | None = None
    tag_ids: list[uuid.UUID] | None = None
    customer_record_id: uuid.UUID | None = None
    service_type_id: uuid.UUID | None = None
    channel: Channel | None = None
    cancel: bool = False
    message: Annotated[str, Field(max_length=500)] | None = None


class _Failed(Exception):
    """The receiver did not answer usably (the message says how, without its body)."""


class BeforeHooks:
    """The process's client for before-hooks (one connection pool for every receiver)."""

    def __init__(
        self, settings: Settings, resolver: addresses.Resolver = addresses.resolve
    ) -> None:
        self.max_answer_bytes = settings.webhook_max_response_bytes
        # Its time limit is the hook's own (asyncio.timeout below), connect and resolve included.
        self._client = addresses.client(
            addresses.networks(settings.webhook_allowed_networks), None, resolver=resolver
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def before_book(
        self,
        catalog: Catalog,
        application_id: uuid.UUID,
        command: BookAppointment,
        case_id: uuid.UUID,
        now: datetime,
    ) -> BookAppointment:
        """`command` as the receiver changed it (unchanged when the hook is off), or raise
        `RuleViolation` (cancelled, or a rule broken) or `ReceiverUnavailable`."""
        service = catalog.services.get(command.day.service_id)
        endpoint = catalog.webhook_endpoint
        if service is None or endpoint is None or BEFORE_BOOK not in service.webhooks:
            return command
        checked = rules.check_booking(catalog, command, now)  # the receiver sees valid ones
        row = rules.new_appointment(checked, catalog.organization_id, application_id, case_id, now)
        body = events.body(catalog, inserted(row, 0, checked.slot.service_type.name, None))
        body["ticket"]["number"] = None
        del body["eventSequence"]
        raw = orjson.dumps(body, default=uuid_text)
        url = hook_url(endpoint.base_url, BEFORE_BOOK)
        headers = {"Content-Type": "application/json"} | signing.headers(
            str(uuid.uuid4()),
            raw,
            list(endpoint.secrets),
            endpoint.authorization_scheme,
            datetime.now(UTC),
        )
        try:
            async with asyncio.timeout(endpoint.before_hook_timeout_s):
                answer = await self._call(url, raw, headers)
        except (TimeoutError, httpx.HTTPError, addresses.AddressRefused, _Failed) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else str(error) or "failed"
            if endpoint.refuse_on_before_hook_failure:
                log.warning("beforeBookAppointment %s: booking refused", reason)
                raise ReceiverUnavailable(
                    "The organization's webhook receiver did not answer in time; retry shortly.",
                    code="webhook_unavailable",
                ) from None
            log.warning("beforeBookAppointment %s: booked unchanged", reason)
            return command
        if answer.cancel:
            raise RuleViolation(
                answer.message or "The organization's webhook cancelled the booking.",
                code="cancelled_by_webhook",
            )
        return _changed(command, answer)

    async def _call(self, url: str, raw: bytes, headers: dict[str, str]) -> BeforeBookAnswer:
        async with self._client.stream("POST", url, content=raw, headers=headers) as response:
            if not 200 <= response.status_code < 300:
                raise _Failed(f"answered HTTP {response.status_code}")
            content = b""
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > self.max_answer_bytes:
                    raise _Failed("answered more than WEBHOOK_MAX_RESPONSE_BYTES")
        if not content.strip():
            return BeforeBookAnswer()
        try:
            return BeforeBookAnswer.model_validate_json(content)
        except ValidationError:
            raise _Failed("answered a body that is not a beforeBookAppointment answer") from None


def _changed(command: BookAppointment, answer: BeforeBookAnswer) -> BookAppointment:
    given = answer.model_fields_set
    changes: dict[str, Any] = {}
    if "fields" in given and answer.fields is not None:
        changes["fields"] = answer.fields
    if "tag_ids" in given and answer.tag_ids is not None:
        changes["tag_ids"] = answer.tag_ids
    if "customer_record_id" in given:
        changes["customer_record_id"] = answer.customer_record_id
    if "service_type_id" in given and answer.service_type_id is not None:
        changes["service_type_id"] = answer.service_type_id
    if "channel" in given and answer.channel is not None:
        changes["channel"] = answer.channel
    return dataclasses.replace(command, **changes)
