"""A route that FastAPI documents from its endpoint's signature like any other, and runs without
FastAPI's per-request dependency solving, which inspects every parameter's annotation again on
each request. What each parameter needs is worked out once, when the route is made:

- the `Request`;
- path parameters, each validated by the field FastAPI made of it (the same rules and errors);
- one JSON body model, parsed from the raw bytes by `model_validate_json` (no `json.loads`
  first, then validation of the Python objects); a body it refuses is judged again the way
  FastAPI judges it, so that errors read the same on every route;
- `Depends` of async functions whose own parameters are the `Request` and path parameters.

In FastAPI's order: a body that is not JSON at all answers 400 or 422 before anything else;
then each dependency runs once its own parameters are valid (authentication answers before
the route's parameters are judged); then every error of the route's parameters and body comes
in one 422.
The endpoint returns a `Response`, sent by a plain ASGI app (`_lean_app`). An endpoint with any
other kind of parameter (query, header, a dependency with dependencies) runs FastAPI's way;
`app.dependency_overrides` is not consulted (nothing here uses it)."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True, slots=True)
class _PathParameter:
    name: str  # the function's parameter
    alias: str  # in the path template
    validate: Callable[..., tuple[Any, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class _Dependency:
    name: str
    call: Callable[..., Awaitable[Any]]
    request_name: str | None
    path: tuple[_PathParameter, ...]


@dataclass(frozen=True, slots=True)
class _Body:
    name: str
    model: type[BaseModel]


class LeanRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        self._lean: Handler | None = None
        super().__init__(path, endpoint, **options)  # calls get_route_handler
        if self._lean is not None and self.max_body_size is None:
            self.app = _lean_app(self._lean)

    def get_route_handler(self) -> Handler:
        self._lean = None if self._embed_body_fields else _lean_handler(self.dependant)
        return self._lean if self._lean is not None else super().get_route_handler()


def _lean_app(handle: Handler) -> ASGIApp:
    """The ASGI app of a lean handler: FastAPI's `request_response` without what only its own
    solving needs. No exit stacks: they close dependencies with `yield` and uploaded files,
    and a lean route has neither. No exception handling of its own: the ExceptionMiddleware
    around every route answers an exception with the same handler."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handle(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def _path_parameters(dependant: Dependant) -> tuple[_PathParameter, ...]:
    return tuple(
        _PathParameter(field.name, field.alias, field.validate) for field in dependant.path_params
    )


def _needs_fastapi(dependant: Dependant) -> bool:
    """A parameter of a kind only FastAPI's own solving supplies."""
    return bool(
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _lean_handler(dependant: Dependant) -> Handler | None:
    """The handler of `dependant`'s endpoint, or None when it has what only FastAPI's own
    solving does."""
    endpoint = dependant.call
    if endpoint is None or not inspect.iscoroutinefunction(endpoint):
        return None
    if not _returns_response(endpoint):
        return None  # FastAPI encodes what it returns
    dependencies: list[_Dependency] = []
    for sub in dependant.dependencies:
        if sub.call is None or sub.name is None or not inspect.iscoroutinefunction(sub.call):
            return None
        if _needs_fastapi(sub) or sub.body_params or sub.dependencies:
            return None  # a dependency takes the Request and path parameters only
        dependencies.append(
            _Dependency(sub.name, sub.call, sub.request_param_name, _path_parameters(sub))
        )
    if _needs_fastapi(dependant) or len(dependant.body_params) > 1:
        return None
    body: _Body | None = None
    if dependant.body_params:
        model = dependant.body_params[0].field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        body = _Body(dependant.body_params[0].name, model)
    return _handler(
        endpoint, dependant.request_param_name, _path_parameters(dependant), dependencies, body
    )


def _handler(
    endpoint: Callable[..., Awaitable[Any]],
    request_name: str | None,
    path: Sequence[_PathParameter],
    dependencies: Sequence[_Dependency],
    body: _Body | None,
) -> Handler:
    async def handle(request: Request) -> Response:
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        parsed: BaseModel | None = None
        if body is not None:
            parsed, body_errors = await _parse_body(request, body.model)
        path_values = request.path_params
        for dependency in dependencies:
            arguments: dict[str, Any] = {}
            dependency_errors = _validate_path(dependency.path, path_values, arguments)
            if dependency_errors:
                errors.extend(dependency_errors)
                continue
            if dependency.request_name is not None:
                arguments[dependency.request_name] = request
            values[dependency.name] = await dependency.call(**arguments)
        errors.extend(_validate_path(path, path_values, values))
        if body is not None:
            errors.extend(body_errors)
            values[body.name] = parsed
        if errors:
            raise RequestValidationError(errors)
        if request_name is not None:
            values[request_name] = request
        response = await endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{endpoint.__name__} must return a Response")
        return response

    return handle


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        answer = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(answer, type) and issubclass(answer, Response)


def _validate_path(
    parameters: Sequence[_PathParameter], path_values: dict[str, Any], into: dict[str, Any]
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for parameter in parameters:
        value, failed = parameter.validate(
            path_values.get(parameter.alias), into, loc=("path", parameter.alias)
        )
        if failed:
            errors.extend(failed)
        else:
            into[parameter.name] = value
    return errors


async def _parse_body(
    request: Request, model: type[BaseModel]
) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    """The body as `model`, or FastAPI's errors for it (located under `body`)."""
    raw = await request.body()
    if not raw:
        return None, [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    if not _is_json(request.headers.get("content-type")):
        # FastAPI validates the bytes as they are (a JSON-only route's dependency has refused
        # them with 415 before this matters).
        return _validated(raw, model)
    try:
        return model.model_validate_json(raw), []
    except ValidationError:
        return _parse_as_fastapi_does(raw, model)


def _parse_as_fastapi_does(
    raw: bytes, model: type[BaseModel]
) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    """A body `model_validate_json` refused, judged again the way FastAPI judges every body, so
    that both kinds of route answer alike, error for error: undecodable (bad encoding, nested
    too deep) 400, not JSON 422 at its position, otherwise the errors of validating what
    `json.loads` made of it."""
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", error.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": error.msg},
                }
            ]
        ) from None
    except Exception as error:
        raise HTTPException(400, "There was an error parsing the body") from error
    return _validated(decoded, model)


def _validated(value: Any, model: type[BaseModel]) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    """`value` validated as FastAPI validates a body: Python input, attributes allowed."""
    try:
        return model.model_validate(value, from_attributes=True), []
    except ValidationError as error:
        return None, _in_body(error)


def _in_body(error: ValidationError) -> list[dict[str, Any]]:
    return [
        cast(dict[str, Any], {**e, "loc": ("body", *e["loc"])})
        for e in error.errors(include_url=False)
    ]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
