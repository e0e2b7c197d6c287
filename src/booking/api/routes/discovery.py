"""What a booking body can name: services, field types, tags, languages (the original has no
such routes; partners had to copy IDs from an admin screen)."""

from __future__ import annotations

from booking.api.deps import Manager
from booking.api.problems import responses as problems
from booking.api.routes import resource_router
from booking.api.schemas import FieldTypeOut, LanguagesOut, ServiceOut, TagOut

router = resource_router("discovery")


@router.get(
    "/{applicationId}/services",
    response_model=list[ServiceOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="The organization's services, service types and calendar units",
)
async def list_services(caller: Manager) -> list[ServiceOut]:
    services = sorted(caller.catalog.services.values(), key=lambda s: (s.name, str(s.id)))
    return [ServiceOut.from_config(s) for s in services]


@router.get(
    "/{applicationId}/field-types",
    response_model=list[FieldTypeOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="The organization's custom field types",
)
async def list_field_types(caller: Manager) -> list[FieldTypeOut]:
    field_types = sorted(caller.catalog.field_types.values(), key=lambda f: (f.name, str(f.id)))
    return [
        FieldTypeOut(
            id=f.id, name=f.name, kind=f.kind, options=list(f.options), required=f.required
        )
        for f in field_types
    ]


@router.get(
    "/{applicationId}/tags",
    response_model=list[TagOut],
    responses=problems(401, 403, 404, 422, 503),
    summary="The organization's tags",
)
async def list_tags(caller: Manager) -> list[TagOut]:
    return [
        TagOut(id=tag_id, name=name)
        for tag_id, name in sorted(caller.catalog.tags.items(), key=lambda t: (t[1], str(t[0])))
    ]


@router.get(
    "/{applicationId}/languages",
    response_model=LanguagesOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="The organization's supported and default languages",
)
async def list_languages(caller: Manager) -> LanguagesOut:
    return LanguagesOut(
        default_language=caller.catalog.default_language,
        supported_languages=list(caller.catalog.supported_languages),
    )
