"""One router per resource; routers parse, authorize and hand typed commands to the service."""

from __future__ import annotations

from fastapi import APIRouter

from booking.api.lean_route import LeanRoute
from booking.api.openapi import operation_id


def resource_router(tag: str) -> APIRouter:
    """The router of one resource: its routes are LeanRoutes, documented under `tag`, named in
    the OpenAPI document by `openapi.operation_id`. The app takes its routes into its own
    router (`app.mount_routes`), so they carry everything that naming needs themselves."""
    return APIRouter(tags=[tag], route_class=LeanRoute, generate_unique_id_function=operation_id)
