"""The hot queries' SQL, built once per query shape, run on the request's
connection, and rows answered without a second validation.

Building a SELECT through Piccolo's query builder costs about a tenth of a
request (issue 8's profile), and the text is the same for every request of
the same shape: the table, the row model's columns, which filters the client
used (not their values), whether a cursor was sent, and the page size. So
`where_shape` reduces Piccolo's where clauses (`Column == value`, `WhereRaw`)
to a hashable shape plus their values, the SQL for a shape is built once
(`functools.lru_cache`) with `$n` placeholders, and asyncpg (whose prepared
statement cache is keyed by that text) runs it on the connection of the
request's transaction, the same one Piccolo would have used. A clause this
module does not know (an `And`, a sub-query) returns None and the caller
keeps Piccolo's builder: nothing here is required for correctness.

Rows the database just typed are not validated again when the row model's
fields are plain (UUID, text, integers, booleans, timestamps, literals):
the records go straight to orjson, with the same output pydantic would
write (UUIDs as strings, UTC timestamps with "Z"). Other models (JSON,
floats) still go through pydantic.

Nothing here decides access: the SQL has only the client's own filters, and
RLS and grants answer for the caller's role exactly as before.
"""

from __future__ import annotations

import datetime
import functools
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any, Literal, Union

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from piccolo.columns import Column
from piccolo.columns.combination import Undefined, Where, WhereRaw
from piccolo.custom_types import Combinable
from piccolo.table import Table
from pydantic import BaseModel

Record = asyncpg.Record
# (column name, operator class) for a Where; the template for a WhereRaw.
ClauseShape = tuple[str, Any] | str
Shape = tuple[ClauseShape, ...]
_PLAIN_TYPES: frozenset[Any] = frozenset({uuid.UUID, str, int, bool, datetime.datetime, type(None)})


class OutsideRequestScope(RuntimeError):
    """A compiled query was run with no request transaction to run it in."""


def request_connection(table: type[Table]) -> PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection:
    """The connection of the request's transaction (the one Piccolo would use).

    Never a connection of its own: outside a request scope there is no
    caller, so this fails rather than run as the pool's default role."""
    transaction = table._meta.db.current_transaction.get()
    if transaction is None:
        raise OutsideRequestScope("compiled queries run only inside a request's transaction")
    connection: PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection = transaction.connection
    return connection


def where_shape(clauses: Sequence[Combinable]) -> tuple[Shape, list[Any]] | None:
    """The clauses' shape and values, or None for a clause not handled here."""
    shape: list[ClauseShape] = []
    values: list[Any] = []
    for clause in clauses:
        if isinstance(clause, WhereRaw):
            template, args = clause.querystring.template, clause.querystring.args
            if any(not _is_value(a) for a in args):
                return None
            shape.append(template)
            values.extend(args)
        elif type(clause) is Where and isinstance(clause.values, Undefined):
            shape.append((clause.column._meta.name, clause.operator))
            if "{value}" in clause.operator.template:
                values.append(clause.value)
        else:
            return None
    return tuple(shape), values


def _is_value(arg: Any) -> bool:
    # A nested QueryString or Piccolo object would need Piccolo's compiler.
    return not hasattr(arg, "template") and not isinstance(arg, (Column, Table))


def _clause_sql(table: type[Table], clause: ClauseShape) -> str:
    if isinstance(clause, str):
        return clause
    name, operator = clause
    table._meta.get_column_by_name(name)  # raises for a name that is not a column
    return str(operator.template.format(name=f'"{name}"', value="{}"))


def _numbered(sql: str, first: int = 1) -> str:
    """Piccolo's `{}` placeholders as asyncpg's `$1, $2, ...`."""
    parts = sql.split("{}")
    return "".join(part + (f"${first + i}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))


def qualified(table: type[Table]) -> str:
    schema = table._meta.schema
    name = f'"{table._meta.tablename}"'
    return f'"{schema}".{name}' if schema else name


def column_list(table: type[Table], out: type[BaseModel]) -> str:
    for name in out.model_fields:
        table._meta.get_column_by_name(name)  # raises for a field that is not a column
    return ", ".join(f'"{name}"' for name in out.model_fields)


@functools.lru_cache(maxsize=512)
def select_sql(
    table: type[Table],
    out: type[BaseModel],
    shape: Shape,
    *,
    order: tuple[str, ...] = (),
    descending: bool = False,
    limit: int | None = None,
) -> str:
    """SELECT the row model's columns WHERE the shape's clauses (ANDed),
    ORDER BY `order`, LIMIT `limit` (a literal: the planner sees it)."""
    sql = f"SELECT {column_list(table, out)} FROM {qualified(table)}"
    if shape:
        sql += " WHERE " + " AND ".join(f"({_clause_sql(table, clause)})" for clause in shape)
    if order:
        direction = " DESC" if descending else ""
        for name in order:
            table._meta.get_column_by_name(name)
        sql += " ORDER BY " + ", ".join(f'"{name}"{direction}' for name in order)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return _numbered(sql)


@functools.lru_cache(maxsize=256)
def insert_sql(table: type[Table], names: tuple[str, ...], out: type[BaseModel]) -> str:
    """INSERT one row naming only `names` (database defaults apply to the
    rest, column grants are exercised exactly) RETURNING the row model."""
    for name in names:
        table._meta.get_column_by_name(name)
    returning = column_list(table, out)
    if not names:
        return f"INSERT INTO {qualified(table)} DEFAULT VALUES RETURNING {returning}"
    columns = ", ".join(f'"{name}"' for name in names)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return f"INSERT INTO {qualified(table)} ({columns}) VALUES ({placeholders}) RETURNING {returning}"


# --------------------------------------------------------------------------
# Rows to JSON


def _plain(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(isinstance(v, str) for v in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return all(_plain(arg) for arg in typing.get_args(annotation))
    return annotation in _PLAIN_TYPES


@functools.lru_cache(maxsize=None)
def is_plain(out: type[BaseModel]) -> bool:
    """Every field is a type the database already guarantees and orjson
    writes exactly as pydantic would: no validation or model needed."""
    return all(not field.metadata and _plain(field.annotation) for field in out.model_fields.values())


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID class, which orjson does not know
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(payload: Any) -> bytes:
    """orjson, writing UUIDs and UTC timestamps as pydantic does."""
    return orjson.dumps(payload, default=_default, option=orjson.OPT_UTC_Z)


def jsonable(out: type[BaseModel], record: Record, decode: Any = None) -> Any:
    """A record as the response writes it: as is for a plain row model,
    else through the model (with `decode` turning JSON text into values)."""
    if is_plain(out):
        return dict(record)
    row = dict(record)
    if decode is not None:
        row = decode(row)
    # Python mode, as json_response does: orjson writes it (money as exact fragments).
    return out.model_validate(row).model_dump(mode="python")
