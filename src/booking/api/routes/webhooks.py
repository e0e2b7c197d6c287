"""The webhook events of the caller's organization that were not delivered, and their
redelivery. The role is Webhooks Operator (not Appointments Manager: a partner that books need
not see or replay its organization's deliveries)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Path, Response, status

from booking.api.deps import Services, WebhooksOperator
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.schemas import ApiModel, json_response
from booking.service.webhooks import operations

router = resource_router("webhooks")

EventId = Annotated[uuid.UUID, Path(alias="eventId")]


class UndeliveredEventOut(ApiModel):
    """An event not delivered: `failed` (every retry failed), or `pending` and waiting for its
    next attempt (`nextAttemptAt`) after `attempts` failed ones."""

    event_id: uuid.UUID
    case_id: uuid.UUID
    hook: str
    event_sequence: int
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime


@router.get(
    "/{applicationId}/webhooks/undelivered",
    response_model=list[UndeliveredEventOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="List the webhook events not delivered",
    description="Failed events and those failing and waiting for a retry, oldest first "
    "(at most 1000). Needs the `Webhooks Operator` role.",
)
async def list_undelivered_webhook_events(caller: WebhooksOperator, services: Services) -> Response:
    events = await operations.undelivered(services.db, caller.catalog.organization_id)
    return json_response(
        [
            UndeliveredEventOut(
                event_id=e.id,
                case_id=e.case_id,
                hook=e.hook,
                event_sequence=e.sequence,
                state=e.state,
                attempts=e.attempts,
                last_error=e.last_error,
                next_attempt_at=e.next_attempt_at,
                created_at=e.created_at,
            )
            for e in events
        ]
    )


@router.post(
    "/{applicationId}/webhooks/events/{eventId}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(401, 403, 404, 422, 503),
    summary="Deliver a webhook event again",
    description="Queues the event at once with its retry schedule started over; an endpoint "
    "stopped by a 410 is called again. Needs the `Webhooks Operator` role.",
)
async def redeliver_webhook_event(
    caller: WebhooksOperator, services: Services, event_id: EventId
) -> Response:
    await operations.redeliver(services.db, caller.catalog.organization_id, event_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)
