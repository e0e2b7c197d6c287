"""The before-hooks: the organization's receiver sees a booking (`beforeBookAppointment`) or a
check-in (`beforeCheckIn`) before it is made, and may change it or cancel it.

Called in the request, before the calendar-day's lock is taken (never while holding it), only
for a change that passed every rule checked before the lock; within the organization's
timeout (`beforeHookTimeoutMs`, connect to last byte). The changed booking or check-in is then
checked by every rule again, like any other. The body is the after-hook's (a booking's with
the `caseId` the case will get and `ticket.number` null; a check-in's as the appointment will
be once checked in), without `eventSequence`, signed the same way. The answer: 2xx with no
body (go on as it is), or a JSON object with any of `fields`, `tagIds` and, for a booking,
`customerRecordId`, `serviceTypeId`, `channel` (each replaces the booking's or the
appointment's), or `cancel: true` and a `message` (422 `cancelled_by_webhook` with that
message). A timeout, a non-2xx answer, an answer too long or not of that shape (another key
included): 503 `webhook_unavailable`, or, when the organization says `onBeforeHookFailure:
book`, the booking or check-in goes on unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from booking.domain import Channel, Hook
from booking.service import rules
from booking.service.catalog import Catalog, WebhookEndpointConfig
from booking.service.commands import BookAppointment, CheckIn
from booking.service.errors import ReceiverUnavailable, RuleViolation
from booking.service.webhooks import addresses, events, signing
from booking.service.webhooks.delivery import hook_url
from booking.settings import Settings
from booking.store.appointments import AppointmentRecord, inserted
from booking.store.db import uuid_text

log = logging.getLogger("booking.webhooks")


class BeforeAnswer(BaseModel):
    """What every before-hook may answer (beforeCheckIn's whole answer)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    fields: dict[uuid.UUID, Any] | None = None
    tag_ids: list[uuid.UUID] | None = None
    cancel: bool = False
    message: Annotated[str, Field(max_length=500)] | None = None


class BeforeBookAnswer(BeforeAnswer):
    customer_record_id: uuid.UUID | None = None
    service_type_id: uuid.UUID | None = None
    channel: Channel | None = None


def endpoint_of(
    catalog: Catalog, service_id: uuid.UUID, hook: Hook
) -> WebhookEndpointConfig | None:
    """The receiver `hook` calls for the service, or None when the hook is off for it."""
    service = catalog.services.get(service_id)
    if service is None or hook not in service.webhooks:
        return None
    return catalog.webhook_endpoint


Answer = TypeVar("Answer", bound=BeforeAnswer)


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
        endpoint = endpoint_of(catalog, command.day.service_id, Hook.BEFORE_BOOK)
        if endpoint is None:
            return command
        checked = rules.check_booking(catalog, command, now)  # the receiver sees valid ones
        row = rules.new_appointment(checked, catalog.organization_id, application_id, case_id, now)
        body = events.body(catalog, inserted(row, 0, checked.slot.service_type.name, None))
        body["ticket"]["number"] = None
        answer = await self._ask(endpoint, Hook.BEFORE_BOOK, body, BeforeBookAnswer, "booking")
        return command if answer is None else _changed_booking(command, answer)

    async def before_check_in(
        self, catalog: Catalog, command: CheckIn, checked_in: AppointmentRecord
    ) -> CheckIn:
        """`command` with the `fields` and `tagIds` the receiver gave (unchanged when the hook
        is off), asked of the appointment `checked_in` as the check-in will leave it; or raise
        `RuleViolation` (cancelled) or `ReceiverUnavailable`. The rules check the changes
        after (`rules.check_check_in`)."""
        endpoint = endpoint_of(catalog, command.day.service_id, Hook.BEFORE_CHECK_IN)
        if endpoint is None:
            return command
        body = events.body(catalog, checked_in)
        answer = await self._ask(endpoint, Hook.BEFORE_CHECK_IN, body, BeforeAnswer, "check-in")
        if answer is None:
            return command
        return dataclasses.replace(command, **_changed_fields_and_tags(answer))

    async def _ask(
        self,
        endpoint: WebhookEndpointConfig,
        hook: Hook,
        body: dict[str, Any],
        answer_type: type[Answer],
        what: str,
    ) -> Answer | None:
        """The receiver's answer to `hook` about a `what`, sent `body` (an after-hook's,
        whose `eventSequence` it drops): None when the receiver failed and the organization
        goes on unchanged then; raise `ReceiverUnavailable` when the organization refuses
        then, and `RuleViolation` when the receiver cancels."""
        del body["eventSequence"]
        raw = orjson.dumps(body, default=uuid_text)
        url = hook_url(endpoint.base_url, hook)
        headers = {"Content-Type": "application/json"} | signing.headers(
            str(uuid.uuid4()),
            raw,
            list(endpoint.secrets),
            endpoint.authorization_scheme,
            datetime.now(UTC),
        )
        try:
            async with asyncio.timeout(endpoint.before_hook_timeout_s):
                answer = await self._call(url, raw, headers, answer_type)
        except (TimeoutError, httpx.HTTPError, addresses.AddressRefused, _Failed) as error:
            reason = "timed out" if isinstance(error, TimeoutError) else str(error) or "failed"
            if endpoint.refuse_on_before_hook_failure:
                log.warning("%s %s: refusing the %s", hook, reason, what)
                raise ReceiverUnavailable(
                    "The organization's webhook receiver did not answer in time; retry shortly.",
                    code="webhook_unavailable",
                ) from None
            log.warning("%s %s: the %s goes on unchanged", hook, reason, what)
            return None
        if answer.cancel:
            raise RuleViolation(
                answer.message or f"The organization's webhook cancelled the {what}.",
                code="cancelled_by_webhook",
            )
        return answer

    async def _call(
        self, url: str, raw: bytes, headers: dict[str, str], answer_type: type[Answer]
    ) -> Answer:
        async with self._client.stream("POST", url, content=raw, headers=headers) as response:
            if not 200 <= response.status_code < 300:
                raise _Failed(f"answered HTTP {response.status_code}")
            content = b""
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > self.max_answer_bytes:
                    raise _Failed("answered more than WEBHOOK_MAX_RESPONSE_BYTES")
        if not content.strip():
            return answer_type()
        try:
            return answer_type.model_validate_json(content)
        except ValidationError:
            raise _Failed("answered a body that is not an answer of its hook") from None


def _changed_fields_and_tags(answer: BeforeAnswer) -> dict[str, Any]:
    """The `fields` and `tagIds` an answer replaces (an absent or null one is kept)."""
    changes: dict[str, Any] = {}
    if answer.fields is not None:
        changes["fields"] = answer.fields
    if answer.tag_ids is not None:
        changes["tag_ids"] = answer.tag_ids
    return changes


def _changed_booking(command: BookAppointment, answer: BeforeBookAnswer) -> BookAppointment:
    given = answer.model_fields_set
    changes = _changed_fields_and_tags(answer)
    if "customer_record_id" in given:
        changes["customer_record_id"] = answer.customer_record_id
    if "service_type_id" in given and answer.service_type_id is not None:
        changes["service_type_id"] = answer.service_type_id
    if "channel" in given and answer.channel is not None:
        changes["channel"] = answer.channel
    return dataclasses.replace(command, **changes)
