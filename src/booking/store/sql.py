"""Statements defined once with SQLAlchemy Core against the models and compiled once, at
import, for the asyncpg dialect: the request path sends the compiled text with positional
arguments, and asyncpg prepares it once per connection. Nothing is built per request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, literal_column

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[str, ...]  # the bound parameters' names, in the order they are passed


def compiled(statement: ClauseElement, *params: str) -> Statement:
    """Compile `statement`, whose bound parameters (`bindparam(name)`, no values) must be
    exactly `params` in this order, as the call sites pass them. Without `params`, the call
    site passes its arguments in the order of `Statement.params`."""
    result = statement.compile(dialect=_DIALECT)
    assert isinstance(result, SQLCompiler)
    order = tuple(result.positiontup or ())
    if (params and order != params) or (
        not params and result.params and any(v is not None for v in result.params.values())
    ):
        raise ValueError(f"parameters are {order}, not {params}")
    return Statement(str(result), order)


def constant(value: str) -> ColumnElement[str]:
    """A fixed string (a status, say) written into the statement instead of bound."""
    if "'" in value:
        raise ValueError(f"not a plain constant: {value!r}")
    return literal_column(f"'{value}'")
