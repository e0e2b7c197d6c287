"""The Customer Management API (role Customers Manager), and a customer's appointments across
calendars (role Appointments Manager)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from booking.api.customer_schemas import (
    CreateCustomerRequest,
    CustomerCreatedOut,
    CustomerRecordOut,
    QueryCustomerRequest,
    UpdateCustomerRequest,
)
from booking.api.deps import Caller, CustomersManager, CustomersManagerSendingJson, Manager
from booking.api.problems import responses as problems
from booking.api.routes.appointments import REPLAYED, WITH_IDEMPOTENCY_KEY
from booking.api.schemas import ApiModel, AppointmentOut, PathDate, json_response
from booking.service import customers, idempotency
from booking.service.customers import CustomerRecordView, IdempotentRequest, Written
from booking.service.idempotency import StoredResponse

router = APIRouter(tags=["customers"])

CUSTOMERS = "/{applicationId}/customers"
CUSTOMER = CUSTOMERS + "/{customerRecordId}"
CustomerRecordId = Annotated[uuid.UUID, Path(alias="customerRecordId")]


def _idempotent(
    caller: Caller, request: Request, method: str, body: ApiModel
) -> IdempotentRequest | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    payload = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return IdempotentRequest(
        application_id=caller.application.id,
        key=idempotency.check_key(key),
        fingerprint=idempotency.request_fingerprint(method, request.url.path, payload),
        ttl=timedelta(seconds=caller.runtime.settings.idempotency_ttl_s),
    )


def _respond(written: Written) -> Response:
    headers = dict(written.answer.headers)
    if written.replayed:
        headers[REPLAYED] = "true"
    return Response(
        written.answer.body, written.answer.status_code, headers, media_type="application/json"
    )


def _record_json(view: CustomerRecordView) -> bytes:
    return CustomerRecordOut.from_view(view).model_dump_json(by_alias=True).encode()


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
    caller: CustomersManagerSendingJson, body: CreateCustomerRequest, request: Request
) -> Response:
    command = customers.CreateCustomer(fields=list(body.fields.items()))
    application_id = caller.application.id

    def answer(view: CustomerRecordView) -> StoredResponse:
        created = CustomerCreatedOut(record_id=view.record_id).model_dump_json(by_alias=True)
        location = f"/{application_id}/customers/{view.record_id}"
        return StoredResponse(201, created.encode(), {"Location": location})

    written = await customers.create_customer(
        caller.runtime.db,
        caller.catalog,
        command,
        caller.runtime.clock(),
        answer,
        _idempotent(caller, request, "POST", body),
    )
    return _respond(written)


@router.post(
    CUSTOMERS + "/query",
    response_model=CustomerRecordOut,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 503),
    summary="Find one customer record by id or by a key field's value",
)
async def query_customer(
    caller: CustomersManagerSendingJson, body: QueryCustomerRequest
) -> Response:
    query: customers.FindByRecordId | customers.FindByKeyField
    if body.query_type == "RecordId":
        assert body.record_id is not None  # the model's validator saw to it
        query = customers.FindByRecordId(body.record_id)
    else:
        assert body.field_slug is not None
        assert body.field_value is not None
        query = customers.FindByKeyField(body.field_slug, body.field_value)
    view = await customers.find_customer(caller.runtime.db, caller.catalog, query)
    return json_response(CustomerRecordOut.from_view(view))


@router.get(
    CUSTOMER,
    response_model=CustomerRecordOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Read a customer record",
)
async def get_customer(caller: CustomersManager, record_id: CustomerRecordId) -> Response:
    view = await customers.get_customer(caller.runtime.db, caller.catalog, record_id)
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
    record_id: CustomerRecordId,
    body: UpdateCustomerRequest,
    request: Request,
) -> Response:
    command = customers.UpdateCustomer(
        record_id=record_id, fields=[(f.field_type_id, f.value) for f in body.fields]
    )

    def answer(view: CustomerRecordView) -> StoredResponse:
        return StoredResponse(200, _record_json(view), {})

    written = await customers.update_customer(
        caller.runtime.db,
        caller.catalog,
        command,
        caller.runtime.clock(),
        answer,
        _idempotent(caller, request, "PATCH", body),
    )
    return _respond(written)


@router.delete(
    CUSTOMER,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404, 422, 503),
    summary="Erase a customer record's personal data",
    description="How to honour an erasure request: the record's fields and display name are "
    "removed, and so are the contact phone and email of its appointments; the appointments "
    "themselves stay (statistics). The record answers 404 from then on.",
)
async def erase_customer(caller: CustomersManager, record_id: CustomerRecordId) -> Response:
    await customers.erase_customer(
        caller.runtime.db, caller.catalog, record_id, caller.runtime.clock()
    )
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
    record_id: CustomerRecordId,
    first_date: Annotated[PathDate, Query(alias="from")],
    last_date: Annotated[PathDate, Query(alias="to")],
) -> Response:
    records = await customers.customer_appointments(
        caller.runtime.db, caller.catalog, record_id, first_date, last_date
    )
    return json_response([AppointmentOut.from_record(r) for r in records])
