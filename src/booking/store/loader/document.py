"""The configuration document: the pydantic models of the YAML file (camelCase keys, unknown
keys rejected, every rule one entity can break checked), the rules across entities that the
file alone can break (ids repeated), and the error that names where a file is wrong.

The models know nothing of YAML or of the database: `reading` turns text into a
`ConfigDocument`, `applying` writes one to the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import re
import uuid
from collections.abc import Hashable
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from booking import domain
from booking.service.catalog import CustomerFieldTypeConfig, CustomersTable
from booking.service.customer_rules import KEY_KINDS, check_fields, placeholders
from booking.service.errors import DomainError
from booking.service.roles import Role
from booking.service.wallclock import windows_time_zone
from booking.store.models import CHANNELS, CUSTOMER_FIELD_KINDS, FIELD_KINDS, INITIAL_CASE_STATUSES

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


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'Europe/London')") from None
    if windows_time_zone(name) is None:  # answers carry the Windows id, as the original's do
        raise ValueError(
            f"time zone {name!r} has no Windows id in CLDR's windowsZones table; use its "
            "canonical IANA name (e.g. 'America/New_York' rather than 'EST5EDT')"
        )
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
Days = Annotated[StrictInt, Field(ge=0)]
NoticeMinutes = Annotated[StrictInt, Field(ge=0)]
Rate = Annotated[StrictInt | StrictFloat, Field(ge=0, le=1)]
Interval = Annotated[
    tuple[Minute, Minute], BeforeValidator(_pair), AfterValidator(_start_before_end)
]
Hours = Annotated[list[Interval], AfterValidator(_no_overlap)]
Channel = Literal["FaceToFace", "Video", "Phone"]
FieldKind = Literal["text", "number", "boolean", "date", "choice"]
assert set(get_args(Channel)) == set(CHANNELS)  # the schema's CHECK constraints agree
assert set(get_args(FieldKind)) == set(FIELD_KINDS)
CustomerFieldKind = Literal["text", "number", "boolean", "date", "choice", "phone", "email"]
assert set(get_args(CustomerFieldKind)) == set(CUSTOMER_FIELD_KINDS)
Slug = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=100)]
MAX_KEY_FIELDS = 4  # as the original's customers tables


class Spec(BaseModel):
    """The base of every model in the file: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


HoldSeconds = Annotated[StrictInt, Field(ge=1, le=86_400)]
InitialCaseStatus = Literal["Waiting", "Pending"]
assert set(get_args(InitialCaseStatus)) == set(INITIAL_CASE_STATUSES)


class ApplicationSpec(Spec):
    id: uuid.UUID
    client_id: ClientId
    name: Name
    enabled: StrictBool = True
    roles: Annotated[list[Role], AfterValidator(_unique)] = Field(default_factory=list)
    # A slot hold's length when the request names none, and the longest a hold may last.
    hold_default_seconds: HoldSeconds = 300
    hold_max_seconds: HoldSeconds = 900

    @model_validator(mode="after")
    def _default_within_max(self) -> ApplicationSpec:
        if self.hold_default_seconds > self.hold_max_seconds:
            raise ValueError(
                f"holdDefaultSeconds {self.hold_default_seconds} is more than holdMaxSeconds "
                f"{self.hold_max_seconds}"
            )
        return self


class ServiceTypeSpec(Spec):
    id: uuid.UUID
    name: Name
    duration_minutes: Minutes
    channels: Annotated[list[Channel], Field(min_length=1), AfterValidator(_unique)]
    no_show_rate: Rate = 0  # the expected share of no-shows, 0 to 1
    color_code: Name | None = None  # e.g. "orange"


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


class InboxSpec(Spec):
    """The queue a service's cases go to."""

    id: uuid.UUID
    name: Name


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_WEBHOOK_SECRET_BYTES = 24


def _webhook_secret(secret: str) -> str:
    """`whsec_` and the base64 of at least 24 random bytes (Standard Webhooks' format). The
    message never repeats the value."""
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    if body == secret:
        raise ValueError(f"a webhook secret starts with {WEBHOOK_SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is 'whsec_' and base64 (A-Z a-z 0-9 + /)") from None
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds at least {MIN_WEBHOOK_SECRET_BYTES} random bytes; make one "
            'with `python -c \'import base64,os; print("whsec_" + '
            "base64.b64encode(os.urandom(32)).decode())'`"
        )
    return secret


WebhookSecret = Annotated[StrictStr, AfterValidator(_webhook_secret)]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("baseUrl is an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("baseUrl has no query, fragment or credentials")
    return url.rstrip("/")


class WebhooksSpec(Spec):
    """The organization's server that service hooks call: `{baseUrl}/service/actions/{hook}`.
    `secrets` sign every call (Standard Webhooks' headers, one signature per secret, so a
    secret can rotate: add the new one first, drop the old one once receivers have it); with
    `authorization: HMAC` the first one also signs the original's `Authorization` header."""

    enabled: StrictBool = True
    base_url: Annotated[StrictStr, AfterValidator(_http_url)]
    authorization: Literal["None", "HMAC"] = "None"
    secrets: Annotated[list[WebhookSecret], Field(min_length=1), AfterValidator(_unique)]
    # The before-hooks are called during the request (a booking, a check-in): how long they
    # may take, and what a timeout or an error does (refuse with 503, or go on unchanged).
    before_hook_timeout_ms: Annotated[StrictInt, Field(ge=100, le=10_000)] = 2000
    on_before_hook_failure: Literal["refuse", "book"] = "refuse"


class ServiceSpec(Spec):
    id: uuid.UUID
    name: Name
    service_category_id: uuid.UUID | None = None  # one of the organization's serviceCategories
    ticket_prefix: StrictStr = ""
    # The agents' booking window, the one bookings over this API use.
    agents_booking_active: StrictBool = True
    booking_window_days: Days | None = None  # None: no limit
    minimum_notice_minutes: NoticeMinutes = 0
    # The customers' own booking window, reported for their front ends.
    self_booking_active: StrictBool = True
    self_booking_window_days: Days | None = None
    self_minimum_notice_minutes: NoticeMinutes = 0
    allow_anonymous_agent_booking: StrictBool = False
    inbox: InboxSpec | None = None
    initial_case_status: InitialCaseStatus = "Waiting"  # where a check-in moves a case
    check_in_minutes_before: Annotated[StrictInt, Field(ge=0, le=1440)] = 60
    check_in_minutes_after: Annotated[StrictInt, Field(ge=0, le=1440)] = 15
    requires_customer: StrictBool = False
    requires_phone: StrictBool = False
    requires_email: StrictBool = False
    service_types: list[ServiceTypeSpec] = Field(default_factory=list)
    calendar_units: list[CalendarUnitSpec] = Field(default_factory=list)
    # The hooks switched on for this service (the organization's `webhooks` must be enabled).
    webhooks: Annotated[list[domain.Hook], AfterValidator(_unique)] = Field(default_factory=list)


class CustomerFieldTypeSpec(Spec):
    """A field of the customers table. `position` orders a record's fields (default: the
    order in the file); a key field's values are unique in the organization."""

    id: uuid.UUID
    name: Name
    slug: Slug
    kind: CustomerFieldKind
    is_key: StrictBool = False
    is_required: StrictBool = False
    position: Annotated[StrictInt, Field(ge=0)] | None = None
    options: Annotated[list[Name], AfterValidator(_unique)] = Field(
        default_factory=list, validate_default=True
    )
    color_code: Name | None = None

    @field_validator("options")
    @classmethod
    def _options_match_kind(cls, options: list[str], info: ValidationInfo) -> list[str]:
        return _options_fit_kind(options, info)

    @model_validator(mode="after")
    def _key_kind(self) -> CustomerFieldTypeSpec:
        if self.is_key and self.kind not in KEY_KINDS:
            raise ValueError(f"a key field is of kind {', '.join(KEY_KINDS)}, not {self.kind!r}")
        return self


class CustomersSpec(Spec):
    """The organization's customers table. `displayName` is the template of a record's display
    name, e.g. "{{first-name}} {{last-name}}" (slugs); without one, a record's text fields in
    position order. `dataTableId` defaults to an id derived from the organization's."""

    data_table_id: uuid.UUID | None = None
    display_name: Annotated[StrictStr, StringConstraints(max_length=500)] | None = None
    field_types: list[CustomerFieldTypeSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _slugs_keys_and_template(self) -> CustomersSpec:
        slugs = [f.slug for f in self.field_types]
        _unique(slugs)
        if sum(f.is_key for f in self.field_types) > MAX_KEY_FIELDS:
            raise ValueError(f"a customers table has at most {MAX_KEY_FIELDS} key fields")
        unknown = [s for s in placeholders(self.display_name or "") if s not in slugs]
        if unknown:
            raise ValueError(f"displayName names unknown field slugs {unknown}")
        return self


CustomerFieldValue = StrictStr | StrictBool | StrictInt | StrictFloat | dt.date


class CustomerRecordSpec(Spec):
    """A record: its `fields` by slug, and a `displayName` (default: from the template)."""

    id: uuid.UUID
    display_name: Name | None = None
    fields: dict[Slug, CustomerFieldValue] = Field(default_factory=dict)


def _options_fit_kind(options: list[str], info: ValidationInfo) -> list[str]:
    kind = info.data.get("kind")  # absent when the kind itself was invalid
    if kind == "choice" and not options:
        raise ValueError("a field type of kind 'choice' needs at least one option")
    if kind is not None and kind != "choice" and options:
        raise ValueError(f"only kind 'choice' has options, not kind {kind!r}")
    return options


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
        return _options_fit_kind(options, info)


class TagSpec(Spec):
    id: uuid.UUID
    name: Name


class ServiceCategorySpec(Spec):
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
    service_categories: list[ServiceCategorySpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(default_factory=list)
    customers: CustomersSpec = Field(default_factory=CustomersSpec)
    customer_records: list[CustomerRecordSpec] = Field(default_factory=list)
    field_types: list[FieldTypeSpec] = Field(default_factory=list)
    tags: list[TagSpec] = Field(default_factory=list)
    webhooks: WebhooksSpec | None = None

    @field_validator("default_language")
    @classmethod
    def _default_is_supported(cls, language: str, info: ValidationInfo) -> str:
        supported = info.data.get("supported_languages")  # absent when they were invalid
        if supported is not None and language not in supported:
            raise ValueError(f"{language!r} is not one of supportedLanguages {supported}")
        return language

    @model_validator(mode="after")
    def _categories_are_listed(self) -> OrganizationSpec:
        listed = {category.id for category in self.service_categories}
        for s, service in enumerate(self.services):
            if (
                service.service_category_id is not None
                and service.service_category_id not in listed
            ):
                raise ValueError(
                    f"services[{s}].serviceCategoryId {service.service_category_id} is not one "
                    "of this organization's serviceCategories"
                )
        return self


class ConfigDocument(Spec):
    organizations: list[OrganizationSpec]


def duplicates(document: ConfigDocument) -> list[str]:
    """The problems of values repeated in the file, one line each, named by key path. Ids are
    primary keys: one entity per id in the whole file; cuIndex unique per service; exception
    dates unique per calendar unit; client ids unique in the file."""
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
        for c, category in enumerate(org.service_categories):
            claim("service category id", category.id, f"{at}.serviceCategories[{c}].id")
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
        for c, customer_field in enumerate(org.customers.field_types):
            claim(
                "customer field type id",
                customer_field.id,
                f"{at}.customers.fieldTypes[{c}].id",
            )
        for g, tag in enumerate(org.tags):
            claim("tag id", tag.id, f"{at}.tags[{g}].id")
    return problems


def customers_table(org: OrganizationSpec) -> CustomersTable:
    """The organization's customers table as the service layer sees it."""
    specs = org.customers.field_types
    positions = [f.position if f.position is not None else p for p, f in enumerate(specs)]
    field_types = [
        CustomerFieldTypeConfig(
            id=f.id,
            name=f.name,
            slug=f.slug,
            kind=domain.CustomerFieldKind(f.kind),
            is_key=f.is_key,
            is_required=f.is_required,
            position=position,
            options=tuple(f.options),
            color_code=f.color_code,
        )
        for f, position in zip(specs, positions, strict=True)
    ]
    return CustomersTable(
        id=org.customers.data_table_id or uuid.uuid5(org.id, "customers"),
        display_name_template=org.customers.display_name,
        field_types={f.id: f for f in sorted(field_types, key=lambda f: (f.position, f.slug))},
    )


def record_values(
    table: CustomersTable, region: str, record: CustomerRecordSpec, broken: list[DomainError]
) -> dict[str, Any]:
    """The record's values as stored, checked with the service's rules: each broken one is
    appended to `broken` (never quoting a value). KeyError names an unknown slug."""
    by_slug = {f.slug: f for f in table.field_types.values()}
    changes = [
        (by_slug[slug].id, value.isoformat() if isinstance(value, dt.date) else value)
        for slug, value in record.fields.items()
    ]
    return check_fields(table, region, changes, broken)


def customer_record_problems(document: ConfigDocument) -> list[str]:
    """Each record's fields checked against its organization's customers table."""
    problems: list[str] = []
    for o, org in enumerate(document.organizations):
        table = customers_table(org)
        slugs = {f.slug: f for f in table.field_types.values()}
        for r, record in enumerate(org.customer_records):
            at = f"organizations[{o}].customerRecords[{r}].fields"
            unknown = [slug for slug in record.fields if slug not in slugs]
            problems += [f"{at}.{slug}: no customer field type has this slug" for slug in unknown]
            if unknown:
                continue
            broken: list[DomainError] = []
            record_values(table, org.default_phone_region, record, broken)
            slug_of = {f"fields.{f.id}": f.slug for f in table.field_types.values()}
            problems += [f"{at}.{slug_of.get(v.field or '', '')}: {v.detail}" for v in broken]
    return problems
