"""Reading a configuration file: YAML text -> plain data -> a validated `ConfigDocument`, every
problem named by the YAML line (syntax) or the key path (e.g.
`organizations[0].services[1].calendarUnits[0].workingHours.mon[1]`) and the rule. Pure apart
from reading the file: no database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
import re
from collections.abc import Hashable, Sequence
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from booking.store.loader.document import (
    ConfigDocument,
    ConfigFileError,
    customer_record_problems,
    duplicates,
)

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
    if "secrets" in error["loc"]:  # a webhook secret is never repeated in a message
        return "listed twice" if "listed twice" in error["msg"] else _without_input(error)
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


def _without_input(error: ErrorDetails) -> str:
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return str(error["msg"])


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
    problems = duplicates(document) or customer_record_problems(document)
    if problems:
        raise ConfigFileError(*problems)
    return document


async def read_config_file(path: pathlib.Path) -> ConfigDocument:
    """The file at `path` as a validated document; unreadable or not UTF-8 is a ConfigFileError."""
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFileError(f"cannot read {path}: {error}") from None
    return parse_config(text)
