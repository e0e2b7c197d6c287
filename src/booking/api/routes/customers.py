"""The Customer Management API (role Customers Manager), and a customer's appointments across
calendars (role Appointments Manager): parse, build the command, call the service, map its
outcome to HTTP."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

from fastapi import Path, Query, Request, Response, status

from booking.api.customer_schemas import (
    CreateCustomerRequest,
    CustomerCreatedOut,
    CustomerRecordOut,
    QueryCustomerRequest,
    UpdateCustomerRequest,
)
from booking.api.deps import CustomersManager, CustomersManagerSendingJson, Manager, Services
from booking.api.idempotency import WITH_IDEMPOTENCY_KEY, StoredResponse, idempotency_key, respond
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.schemas import AppointmentOut, PathDate, appointments_json, json_response
from booking.service import customers
from booking.service.commands import (
    CreateCustomer,
    FindByKeyField,
    FindByRecordId,
    UpdateCustomer,
)
from booking.service.customers import CustomerRecordView

router = resource_router("customers")

CUSTOMERS = "/{applicationId}/customers"
# `:uuid`: `/customers/query` is not a record's path, so only POST is allowed there (405's
# Allow header); a record id that is no GUID answers 404 (no such resource), as an unknown one.
CUSTOMER = CUSTOMERS + "/{customerRecordId:uuid}"
CustomerRecordId = Annotated[uuid.UUID, Path(alias="customerRecordId")]


def _created(application_id: uuid.UUID, view: CustomerRecordView) -> StoredResponse:
    created = CustomerCreatedOut(record_id=view.record_id).model_dump_json(by_alias=True)
    location = f"/{application_id}/customers/{view.record_id}"
    return StoredResponse(201, created.encode(), {"Location": location})


def _updated(view: CustomerRecordView) -> StoredResponse:
    body = CustomerRecordOut.from_view(view).model_dump_json(by_alias=True).encode()
    return StoredResponse(200, body, {})


@router.post(
    CUSTOMERS,
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerCreatedOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Create a customer record",
    description="409 `duplicate_key_field` when a key field's value belongs to another record.",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def create_customer(
    caller: CustomersManagerSendingJson,
    services: Services,
    body: CreateCustomerRequest,
    request: Request,
) -> Response:
    command = CreateCustomer(fields=list(body.fields.items()))
    now = services.clock()
    application_id = caller.application.id
    render = partial(_created, application_id)
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, body, render
    )
    outcome = await customers.create_customer(services.db, caller.catalog, command, now, key)
    return respond(outcome, key, render)


@router.post(
    CUSTOMERS + "/query",
    response_model=CustomerRecordOut,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 503),
    summary="Find one customer record by id or by a key field's value",
)
async def query_customer(
    caller: CustomersManagerSendingJson, services: Services, body: QueryCustomerRequest
) -> Response:
    query: FindByRecordId | FindByKeyField
    if body.query_type == "RecordId":
        assert body.record_id is not None  # the model's validator saw to it
        query = FindByRecordId(body.record_id)
    else:
        assert body.field_slug is not None
        assert body.field_value is not None
        query = FindByKeyField(body.field_slug, body.field_value)
    view = await customers.find_customer(services.db, caller.catalog, query)
    return json_response(CustomerRecordOut.from_view(view))


@router.get(
    CUSTOMER,
    response_model=CustomerRecordOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Read a customer record",
)
async def get_customer(
    caller: CustomersManager, services: Services, record_id: CustomerRecordId
) -> Response:
    view = await customers.get_customer(services.db, caller.catalog, record_id)
    return json_response(CustomerRecordOut.from_view(view))


@router.patch(
    CUSTOMER,
    response_model=CustomerRecordOut,
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    summary="Update a customer record's fields",
    description="Answers 200 with the updated record.",
    openapi_extra=WITH_IDEMPOTENCY_KEY,
)
async def update_customer(
    caller: CustomersManagerSendingJson,
    services: Services,
    record_id: CustomerRecordId,
    body: UpdateCustomerRequest,
    request: Request,
) -> Response:
    command = UpdateCustomer(
        record_id=record_id, fields=[(f.field_type_id, f.value) for f in body.fields]
    )
    now = services.clock()
    application_id = caller.application.id
    key = idempotency_key(
        request, application_id, services.settings.idempotency_ttl_s, now, body, _updated
    )
    outcome = await customers.update_customer(services.db, caller.catalog, command, now, key)
    return respond(outcome, key, _updated)


@router.delete(
    CUSTOMER,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404, 422, 503),
    summary="Erase a customer record's personal data",
    description="How to honour an erasure request: the record's fields and display name are "
    "removed, and so are the contact phone and email of its appointments; the appointments "
    "themselves stay (statistics). The record answers 404 from then on.",
)
async def erase_customer(
    caller: CustomersManager, services: Services, record_id: CustomerRecordId
) -> Response:
    await customers.erase_customer(services.db, caller.catalog, record_id, services.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    CUSTOMER + "/appointments",
    response_model=list[AppointmentOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="A customer's appointments in every calendar, by start time",
    description="Role Appointments Manager. `from` and `to` are inclusive local dates, at most "
    f"{customers.MAX_APPOINTMENT_RANGE_DAYS} days apart; every status is listed.",
)
async def list_customer_appointments(
    caller: Manager,
    services: Services,
    record_id: CustomerRecordId,
    first_date: Annotated[PathDate, Query(alias="from")],
    last_date: Annotated[PathDate, Query(alias="to")],
) -> Response:
    records = await customers.customer_appointments(
        services.db, caller.catalog, record_id, first_date, last_date
    )
    return Response(appointments_json(records, caller.catalog), media_type="application/json")
