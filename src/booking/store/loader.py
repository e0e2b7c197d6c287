"""Configuration as code: organizations and everything they configure, read from a YAML file.

    organizations:
      - id: 6f1c2a4e-0000-4000-8000-000000000001
        name: Demo City Services
        timeZone: Europe/London
        ...

(examples/demo.yaml is a complete, commented example.) Three steps, each usable on its own:

- `parse_config(text)` turns YAML text into a validated `ConfigDocument` without touching the
  database: camelCase keys, unknown keys rejected, every rule the file alone can break is checked.
- `apply_config(conn, document)` creates or updates every entity by the id the file gives it
  (calendar units by service id and cuIndex) with INSERT ... ON CONFLICT DO UPDATE, inside the
  caller's transaction, and never commits. A calendar unit's working hours and date exceptions are
  replaced by the file's. Entities the file does not mention are left alone. An id that already
  belongs to another organization (or a service type of another service) is refused, never moved.
- `load_file(engine, path)` reads, parses and applies in one transaction: a bad file changes
  nothing.

Every failure is a `ConfigFileError` whose message names the YAML line (syntax) or the key path
(e.g. `organizations[0].services[1].calendarUnits[0].workingHours.mon[1]`) and the rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import pathlib
import re
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails
from sqlalchemy import CursorResult, Executable, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.service.roles import Role
from booking.store.models import (
    CHANNELS,
    FIELD_KINDS,
    Base,
    CalendarException,
    CalendarUnit,
    CustomerRecord,
    ExceptionHours,
    FieldType,
    Organization,
    RegisteredApplication,
    Service,
    ServiceType,
    Tag,
    WorkingHours,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO weekday = index + 1


class ConfigFileError(Exception):
    """A configuration file that cannot be loaded. The message names the YAML line (syntax errors)
    or the key path (e.g. organizations[0].services[1].calendarUnits[0].workingHours.mon[1]) and
    the rule; `problems` lists every problem found, one line each."""

    def __init__(self, *problems: str) -> None:
        self.problems: tuple[str, ...] = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(message)


@dataclass(frozen=True)
class LoadSummary:
    """What a load created or updated: a count per entity kind, plus the applications as
    (id, client_id, name, roles) and the services as (id, name), in file order."""

    organizations: int
    applications: list[tuple[uuid.UUID, str, str, tuple[str, ...]]]
    services: list[tuple[uuid.UUID, str]]
    service_types: int
    calendar_units: int
    customer_records: int
    field_types: int
    tags: int

    def counts(self) -> dict[str, int]:
        return {
            "organizations": self.organizations,
            "applications": len(self.applications),
            "services": len(self.services),
            "serviceTypes": self.service_types,
            "calendarUnits": self.calendar_units,
            "customerRecords": self.customer_records,
            "fieldTypes": self.field_types,
            "tags": self.tags,
        }

    def __str__(self) -> str:
        return ", ".join(f"{kind}={count}" for kind, count in self.counts().items())


# ---------------------------------------------------------------------------------------------
# The document: pydantic models, camelCase keys, nothing unknown accepted.
# ---------------------------------------------------------------------------------------------


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'Europe/London')") from None
    return name


def _phone_region(region: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", region):
        raise ValueError(f"{region!r} is not an uppercase ISO 3166 alpha-2 code such as 'GB'")
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a region known to the phone-number parser")
    return region


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


def _pair(value: Any) -> Any:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("expected a [start, end] pair of minutes after midnight, e.g. [480, 720]")
    return value


def _start_before_end(interval: tuple[int, int]) -> tuple[int, int]:
    start, end = interval
    if start >= end:
        raise ValueError(f"start {start} must be before end {end}")
    return interval


def _no_overlap(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    for (s1, e1), (s2, e2) in itertools.pairwise(sorted(intervals)):
        if s2 < e1:
            raise ValueError(f"intervals [{s1}, {e1}] and [{s2}, {e2}] overlap")
    return intervals


Name = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]
ClientId = Annotated[StrictStr, StringConstraints(pattern=r"^\S+$")]
LanguageTag = Annotated[
    StrictStr, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
]
TimeZoneName = Annotated[StrictStr, AfterValidator(_time_zone)]
PhoneRegion = Annotated[StrictStr, AfterValidator(_phone_region)]
Minute = Annotated[StrictInt, Field(ge=0, le=1440)]
Minutes = Annotated[StrictInt, Field(ge=1, le=1440)]
Interval = Annotated[
    tuple[Minute, Minute], BeforeValidator(_pair), AfterValidator(_start_before_end)
]
Hours = Annotated[list[Interval], AfterValidator(_no_overlap)]
Channel = Literal["FaceToFace", "Video", "Phone"]
FieldKind = Literal["text", "number", "boolean", "date", "choice"]
assert set(get_args(Channel)) == set(CHANNELS)  # the schema's CHECK constraints agree
assert set(get_args(FieldKind)) == set(FIELD_KINDS)


class Spec(BaseModel):
    """The base of every model in the file: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


class ApplicationSpec(Spec):
    id: uuid.UUID
    client_id: ClientId
    name: Name
    enabled: StrictBool = True
    roles: Annotated[list[Role], AfterValidator(_unique)] = Field(default_factory=list)


class ServiceTypeSpec(Spec):
    id: uuid.UUID
    name: Name
    duration_minutes: Minutes
    channels: Annotated[list[Channel], Field(min_length=1), AfterValidator(_unique)]


class WorkingHoursSpec(Spec):
    """Per ISO weekday, the open intervals; a day not given is closed."""

    mon: Hours = Field(default_factory=list)
    tue: Hours = Field(default_factory=list)
    wed: Hours = Field(default_factory=list)
    thu: Hours = Field(default_factory=list)
    fri: Hours = Field(default_factory=list)
    sat: Hours = Field(default_factory=list)
    sun: Hours = Field(default_factory=list)

    def by_weekday(self) -> dict[int, list[tuple[int, int]]]:
        return {number: getattr(self, day) for number, day in enumerate(WEEKDAYS, start=1)}


class ExceptionSpec(Spec):
    """A date that differs from the weekly hours: `closed: true`, or open only `hours`."""

    date: dt.date
    closed: StrictBool = False
    hours: Hours = Field(default_factory=list)

    @model_validator(mode="after")
    def _closed_or_hours(self) -> ExceptionSpec:
        if self.closed and self.hours:
            raise ValueError("a closed date cannot also have hours")
        if not self.closed and not self.hours:
            raise ValueError("give either 'closed: true' or the date's 'hours'")
        return self


class CalendarUnitSpec(Spec):
    cu_index: Annotated[StrictInt, Field(ge=0)]
    slot_minutes: Minutes
    capacity: Annotated[StrictInt, Field(ge=1)] = 1
    time_zone: TimeZoneName | None = None  # None: the organization's zone
    working_hours: WorkingHoursSpec = Field(default_factory=WorkingHoursSpec)
    exceptions: list[ExceptionSpec] = Field(default_factory=list)


class ServiceSpec(Spec):
    id: uuid.UUID
    name: Name
    ticket_prefix: StrictStr = ""
    booking_window_days: Annotated[StrictInt, Field(ge=0)] | None = None  # None: no limit
    requires_customer: StrictBool = False
    requires_phone: StrictBool = False
    requires_email: StrictBool = False
    service_types: list[ServiceTypeSpec] = Field(default_factory=list)
    calendar_units: list[CalendarUnitSpec] = Field(default_factory=list)


class CustomerRecordSpec(Spec):
    id: uuid.UUID
    display_name: Name


class FieldTypeSpec(Spec):
    id: uuid.UUID
    name: Name
    kind: FieldKind
    options: Annotated[list[Name], AfterValidator(_unique)] = Field(
        default_factory=list, validate_default=True
    )
    required: StrictBool = False

    @field_validator("options")
    @classmethod
    def _options_match_kind(cls, options: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind")  # absent when the kind itself was invalid
        if kind == "choice" and not options:
            raise ValueError("a field type of kind 'choice' needs at least one option")
        if kind is not None and kind != "choice" and options:
            raise ValueError(f"only kind 'choice' has options, not kind {kind!r}")
        return options


class TagSpec(Spec):
    id: uuid.UUID
    name: Name


class OrganizationSpec(Spec):
    id: uuid.UUID
    name: Name
    time_zone: TimeZoneName
    # Declared before defaultLanguage so that its check can see them.
    supported_languages: Annotated[list[LanguageTag], Field(min_length=1), AfterValidator(_unique)]
    default_language: LanguageTag
    default_phone_region: PhoneRegion
    applications: list[ApplicationSpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(default_factory=list)
    customer_records: list[CustomerRecordSpec] = Field(default_factory=list)
    field_types: list[FieldTypeSpec] = Field(default_factory=list)
    tags: list[TagSpec] = Field(default_factory=list)

    @field_validator("default_language")
    @classmethod
    def _default_is_supported(cls, language: str, info: ValidationInfo) -> str:
        supported = info.data.get("supported_languages")  # absent when they were invalid
        if supported is not None and language not in supported:
            raise ValueError(f"{language!r} is not one of supportedLanguages {supported}")
        return language


class ConfigDocument(Spec):
    organizations: list[OrganizationSpec]


# ---------------------------------------------------------------------------------------------
# Parsing: YAML -> plain data -> ConfigDocument, every problem named by line or key path.
# ---------------------------------------------------------------------------------------------

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader with two foot-guns removed: only true/false are booleans (YAML 1.1 also
    reads yes/no/on/off, so Norway's region `NO` or the language `no` would become False), and a
    key given twice in one mapping is an error instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found key {key!r} twice (first on line {first_line[key] + 1})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = error.problem or str(error)
        if error.context:
            problem += f" ({error.context})"
        raise ConfigFileError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigFileError(f"invalid YAML: {error}") from None


def _key_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = error["loc"][-1] if error["loc"] else ""
        hint = f"; did you mean {to_camel(key)!r}?" if isinstance(key, str) and "_" in key else ""
        return f"unknown key (keys are camelCase){hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    got = error.get("input")
    if isinstance(got, str | int | float | bool | dt.date) or got is None:
        return f"{error['msg']} (got {got!r})"
    return str(error["msg"])


def _check_uniqueness(document: ConfigDocument) -> list[str]:
    """Ids are primary keys: one entity per id in the whole file; cuIndex unique per service;
    exception dates unique per calendar unit; client ids unique in the file."""
    problems: list[str] = []
    first_seen: dict[tuple[str, Hashable, Hashable], str] = {}

    def claim(what: str, value: Hashable, path: str, scope: Hashable = None) -> bool:
        first = first_seen.setdefault((what, scope, value), path)
        if first != path:
            problems.append(f"{path}: {what} {value} appears twice (first at {first})")
        return first == path

    for o, org in enumerate(document.organizations):
        at = f"organizations[{o}]"
        claim("organization id", org.id, f"{at}.id")
        for a, app in enumerate(org.applications):
            claim("application id", app.id, f"{at}.applications[{a}].id")
            claim("clientId", app.client_id, f"{at}.applications[{a}].clientId")
        for s, service in enumerate(org.services):
            service_at = f"{at}.services[{s}]"
            first_time = claim("service id", service.id, f"{service_at}.id")
            for t, service_type in enumerate(service.service_types):
                claim("service type id", service_type.id, f"{service_at}.serviceTypes[{t}].id")
            # cuIndex is unique per service: a repeated service was reported above already.
            for c, unit in enumerate(service.calendar_units if first_time else []):
                unit_at = f"{service_at}.calendarUnits[{c}]"
                claim("cuIndex", unit.cu_index, f"{unit_at}.cuIndex", scope=service.id)
                for e, exception in enumerate(unit.exceptions):
                    claim(
                        "exception date",
                        exception.date,
                        f"{unit_at}.exceptions[{e}].date",
                        scope=(service.id, unit.cu_index),
                    )
        for r, record in enumerate(org.customer_records):
            claim("customer record id", record.id, f"{at}.customerRecords[{r}].id")
        for f, field_type in enumerate(org.field_types):
            claim("field type id", field_type.id, f"{at}.fieldTypes[{f}].id")
        for g, tag in enumerate(org.tags):
            claim("tag id", tag.id, f"{at}.tags[{g}].id")
    return problems


def parse_config(text: str) -> ConfigDocument:
    """YAML text -> a validated document. Pure: no database, no file system."""
    data = _read_yaml(text)
    if data is None:
        raise ConfigFileError("the file is empty: expected a mapping with an 'organizations' list")
    try:
        document = ConfigDocument.model_validate(data)
    except ValidationError as error:
        raise ConfigFileError(
            *(f"{_key_path(e['loc'])}: {_describe(e)}" for e in error.errors())
        ) from None
    problems = _check_uniqueness(document)
    if problems:
        raise ConfigFileError(*problems)
    return document


# ---------------------------------------------------------------------------------------------
# Applying: explicit upserts, in the caller's transaction.
# ---------------------------------------------------------------------------------------------


async def _execute(
    conn: AsyncConnection,
    statement: Executable,
    path: str,
    rows: list[dict[str, Any]] | None = None,
) -> CursorResult[Any]:
    """Run one statement; a constraint the database enforces becomes a ConfigFileError."""
    try:
        return await conn.execute(statement, rows)
    except (IntegrityError, DataError) as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise ConfigFileError(f"{path}: the database refused it: {reason}") from error


async def _upsert(
    conn: AsyncConnection,
    model: type[Base],
    values: dict[str, Any],
    path: str,
    *,
    owner: str | None = None,
) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column of `values`.

    With `owner` (the parent column, e.g. organization_id), an existing row of another parent is
    not updated but refused: ids are global, and moving an entity between organizations (or a
    service type between services) would leave its appointments pointing at the wrong parent.
    """
    table = model.__table__
    key = [column.name for column in table.primary_key]
    row = insert(model).values(values)
    upsert = row.on_conflict_do_update(
        index_elements=key,
        set_={name: row.excluded[name] for name in values if name not in key},
        where=(table.c[owner] == row.excluded[owner]) if owner else None,
    ).returning(*(table.c[name] for name in key))
    if (await _execute(conn, upsert, path)).first() is not None or owner is None:
        return
    current = await conn.scalar(select(table.c[owner]).where(table.c.id == values["id"]))
    parent = owner.removesuffix("_id").replace("_", " ")
    raise ConfigFileError(
        f"{path}.id: {values['id']} already belongs to another {parent} ({current}); ids are "
        f"global, so give this one a new id"
    )


async def _check_client_id_free(
    conn: AsyncConnection, application: ApplicationSpec, path: str
) -> None:
    other = (
        await conn.execute(
            select(RegisteredApplication.id, RegisteredApplication.organization_id).where(
                RegisteredApplication.client_id == application.client_id,
                RegisteredApplication.id != application.id,
            )
        )
    ).first()
    if other is not None:
        raise ConfigFileError(
            f"{path}.clientId: {application.client_id!r} is already the client id of "
            f"application {other.id} (organization {other.organization_id})"
        )


async def _replace_hours(
    conn: AsyncConnection, service_id: uuid.UUID, unit: CalendarUnitSpec, path: str
) -> None:
    """The unit's working hours and date exceptions become exactly the file's."""
    await _execute(
        conn,
        delete(WorkingHours).where(
            WorkingHours.service_id == service_id, WorkingHours.cu_index == unit.cu_index
        ),
        path,
    )
    await _execute(  # exception_hours go with them (ON DELETE CASCADE)
        conn,
        delete(CalendarException).where(
            CalendarException.service_id == service_id,
            CalendarException.cu_index == unit.cu_index,
        ),
        path,
    )
    rows = [
        {
            "service_id": service_id,
            "cu_index": unit.cu_index,
            "weekday": weekday,
            "start_minute": start,
            "end_minute": end,
        }
        for weekday, intervals in unit.working_hours.by_weekday().items()
        for start, end in intervals
    ]
    if rows:
        await _execute(conn, insert(WorkingHours), f"{path}.workingHours", rows)
    for e, exception in enumerate(unit.exceptions):
        exception_at = f"{path}.exceptions[{e}]"
        exception_id = (
            await _execute(
                conn,
                insert(CalendarException)
                .values(
                    service_id=service_id,
                    cu_index=unit.cu_index,
                    on_date=exception.date,
                    closed=exception.closed,
                )
                .returning(CalendarException.id),
                exception_at,
            )
        ).scalar_one()
        hours = [
            {"exception_id": exception_id, "start_minute": start, "end_minute": end}
            for start, end in exception.hours
        ]
        if hours:
            await _execute(conn, insert(ExceptionHours), f"{exception_at}.hours", hours)


async def _apply_service(
    conn: AsyncConnection, organization_id: uuid.UUID, service: ServiceSpec, path: str
) -> None:
    await _upsert(
        conn,
        Service,
        {
            "id": service.id,
            "organization_id": organization_id,
            "name": service.name,
            "requires_customer": service.requires_customer,
            "requires_phone": service.requires_phone,
            "requires_email": service.requires_email,
            "ticket_prefix": service.ticket_prefix,
            "booking_window_days": service.booking_window_days,
        },
        path,
        owner="organization_id",
    )
    for t, service_type in enumerate(service.service_types):
        await _upsert(
            conn,
            ServiceType,
            {
                "id": service_type.id,
                "service_id": service.id,
                "name": service_type.name,
                "duration_minutes": service_type.duration_minutes,
                "channels": list(service_type.channels),
            },
            f"{path}.serviceTypes[{t}]",
            owner="service_id",
        )
    for c, unit in enumerate(service.calendar_units):
        unit_at = f"{path}.calendarUnits[{c}]"
        await _upsert(
            conn,
            CalendarUnit,
            {
                "service_id": service.id,
                "cu_index": unit.cu_index,
                "slot_minutes": unit.slot_minutes,
                "capacity": unit.capacity,
                "time_zone": unit.time_zone,
            },
            unit_at,
        )
        await _replace_hours(conn, service.id, unit, unit_at)


async def _apply_organization(conn: AsyncConnection, org: OrganizationSpec, path: str) -> None:
    await _upsert(
        conn,
        Organization,
        {
            "id": org.id,
            "name": org.name,
            "time_zone": org.time_zone,
            "default_language": org.default_language,
            "supported_languages": list(org.supported_languages),
            "default_phone_region": org.default_phone_region,
        },
        path,
    )
    for a, application in enumerate(org.applications):
        application_at = f"{path}.applications[{a}]"
        await _check_client_id_free(conn, application, application_at)
        await _upsert(
            conn,
            RegisteredApplication,
            {
                "id": application.id,
                "organization_id": org.id,
                "client_id": application.client_id,
                "name": application.name,
                "enabled": application.enabled,
                "roles": list(application.roles),
            },
            application_at,
            owner="organization_id",
        )
    for s, service in enumerate(org.services):
        await _apply_service(conn, org.id, service, f"{path}.services[{s}]")
    for r, record in enumerate(org.customer_records):
        await _upsert(
            conn,
            CustomerRecord,
            {"id": record.id, "organization_id": org.id, "display_name": record.display_name},
            f"{path}.customerRecords[{r}]",
            owner="organization_id",
        )
    for f, field_type in enumerate(org.field_types):
        await _upsert(
            conn,
            FieldType,
            {
                "id": field_type.id,
                "organization_id": org.id,
                "name": field_type.name,
                "kind": field_type.kind,
                "options": list(field_type.options),
                "required": field_type.required,
            },
            f"{path}.fieldTypes[{f}]",
            owner="organization_id",
        )
    for g, tag in enumerate(org.tags):
        await _upsert(
            conn,
            Tag,
            {"id": tag.id, "organization_id": org.id, "name": tag.name},
            f"{path}.tags[{g}]",
            owner="organization_id",
        )


async def apply_config(conn: AsyncConnection, document: ConfigDocument) -> LoadSummary:
    """Create or update everything in `document`, inside the caller's transaction (never
    committed here). It runs in a savepoint: on a ConfigFileError none of its writes remain and
    the caller's transaction is still usable."""
    async with conn.begin_nested():
        for o, org in enumerate(document.organizations):
            await _apply_organization(conn, org, f"organizations[{o}]")
    orgs = document.organizations
    return LoadSummary(
        organizations=len(orgs),
        applications=[
            (a.id, a.client_id, a.name, tuple(map(str, a.roles)))
            for o in orgs
            for a in o.applications
        ],
        services=[(s.id, s.name) for o in orgs for s in o.services],
        service_types=sum(len(s.service_types) for o in orgs for s in o.services),
        calendar_units=sum(len(s.calendar_units) for o in orgs for s in o.services),
        customer_records=sum(len(o.customer_records) for o in orgs),
        field_types=sum(len(o.field_types) for o in orgs),
        tags=sum(len(o.tags) for o in orgs),
    )


async def load_file(engine: AsyncEngine, path: pathlib.Path) -> LoadSummary:
    """Read, parse and apply `path` in one transaction: a bad file changes nothing."""
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFileError(f"cannot read {path}: {error}") from None
    document = parse_config(text)
    async with engine.begin() as conn:
        return await apply_config(conn, document)
