"""Generic typed row operations over Piccolo tables.

Inserts are written as SQL naming only the columns the caller supplied, so
database defaults (`auth.uid()`, `now()`, `gen_random_uuid()`) apply and
column-level INSERT privileges are exercised exactly; Piccolo's own insert
sends every column. Selects, updates and deletes use Piccolo's builder.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from piccolo.columns import JSONB, Column
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.table import Table
from pydantic import BaseModel

from centrid.queries.compiled import insert_sql, jsonable, request_connection, select_sql, where_shape

RowT = TypeVar("RowT", bound=BaseModel)


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page(Generic[RowT]):
    items: list[RowT]
    next_cursor: str | None


def _column(table: type[Table], name: str) -> Column:
    column = table._meta.get_column_by_name(name)
    return column


def columns_of(table: type[Table], model: type[BaseModel]) -> list[Column]:
    """The table columns a row model reads (its fields, by name)."""
    return [_column(table, name) for name in model.model_fields]


def _decode(table: type[Table], record: dict[str, Any]) -> dict[str, Any]:
    for name, value in record.items():
        if isinstance(value, str) and isinstance(table._meta.get_column_by_name(name), JSONB):
            record[name] = orjson.loads(value)
    return record


def _encode(table: type[Table], name: str, value: Any) -> Any:
    if isinstance(_column(table, name), JSONB) and value is not None:
        return orjson.dumps(value).decode()
    return value


def _qualified(table: type[Table]) -> str:
    schema = table._meta.schema
    name = f'"{table._meta.tablename}"'
    return f'"{schema}".{name}' if schema else name


async def insert_rows(table: type[Table], rows: Sequence[dict[str, Any]], out: type[RowT]) -> list[RowT]:
    """Insert rows in one statement (all or nothing). Every row must name
    the same columns."""
    if not rows:
        return []
    names = list(rows[0])
    for row in rows:
        if list(row) != names:
            raise ValueError("all rows of one insert must name the same columns")
    for name in names:
        _column(table, name)  # raises for a name that is not a column
    returning = ", ".join(f'"{c}"' for c in out.model_fields)
    args: list[Any] = []
    values_sql = []
    for row in rows:
        placeholders = []
        for name in names:
            args.append(_encode(table, name, row[name]))
            placeholders.append("{}")
        values_sql.append("(" + ", ".join(placeholders) + ")")
    if names:
        columns_sql = "(" + ", ".join(f'"{n}"' for n in names) + ")"
        sql = f"INSERT INTO {_qualified(table)} {columns_sql} VALUES {', '.join(values_sql)} RETURNING {returning}"
    else:
        sql = f"INSERT INTO {_qualified(table)} DEFAULT VALUES RETURNING {returning}"
    records = await table.raw(sql, *args).run()
    return [out.model_validate(_decode(table, dict(r))) for r in records]


async def select_one(table: type[Table], out: type[RowT], *where: Combinable) -> RowT | None:
    query = table.select(*columns_of(table, out)).output(load_json=True)
    for clause in where:
        query = query.where(clause)
    record = await query.first().run()
    return None if record is None else out.model_validate(record)


async def select_all(
    table: type[Table], out: type[RowT], *where: Combinable, order_by: Sequence[Column] = (), ascending: bool = True
) -> list[RowT]:
    query = table.select(*columns_of(table, out)).output(load_json=True)
    for clause in where:
        query = query.where(clause)
    if order_by:
        query = query.order_by(*order_by, ascending=ascending)
    return [out.model_validate(r) for r in await query.run()]


def encode_cursor(at: datetime.datetime, row_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        parsed = datetime.datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed.astimezone(datetime.timezone.utc), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidCursor("cursor is not one this API issued") from exc


async def select_page(
    table: type[Table],
    out: type[RowT],
    where: Sequence[Combinable],
    *,
    order_column: str,
    limit: int,
    cursor: str | None,
) -> Page[RowT]:
    """Newest first on (order_column, id), keyset-paginated: stable while
    rows are added, and served by the (user_id, order_column DESC, id DESC)
    indexes."""
    order = _column(table, order_column)
    query = table.select(*columns_of(table, out)).output(load_json=True)
    for clause in where:
        query = query.where(clause)
    if cursor is not None:
        at, row_id = decode_cursor(cursor)
        query = query.where(WhereRaw(f'("{order_column}", "id") < ({{}}, {{}})', at, row_id))
    query = query.order_by(order, table._meta.primary_key, ascending=False).limit(limit + 1)
    records = await query.run()
    items = [out.model_validate(r) for r in records[:limit]]
    next_cursor = None
    if len(records) > limit:
        last = records[limit - 1]
        next_cursor = encode_cursor(last[order_column], last["id"])
    return Page(items=items, next_cursor=next_cursor)


async def update_where(table: type[Table], values: dict[str, Any], out: type[RowT], *where: Combinable) -> list[RowT]:
    """UPDATE ... RETURNING the row model; rows RLS hides are simply not updated."""
    # JSON values are encoded here, as for inserts: Piccolo would take a str
    # for an already-serialized document and re-parse it.
    setters: dict[Column | str, Any] = {
        _column(table, name): _encode(table, name, value) for name, value in values.items()
    }
    query = table.update(setters).returning(*columns_of(table, out))
    for clause in where:
        query = query.where(clause)
    records = await query.run()
    return [out.model_validate(_decode(table, dict(r))) for r in records]


async def delete_where(table: type[Table], *where: Combinable) -> int:
    query = table.delete().returning(table._meta.primary_key)
    for clause in where:
        query = query.where(clause)
    return len(await query.run())


# --------------------------------------------------------------------------
# The request path's verbs with SQL built once per shape (centrid.queries.compiled),
# answering JSON-ready rows. Each falls back to the builder above for a
# where clause the compiler does not know, so results never depend on it.


async def select_page_json(
    table: type[Table],
    out: type[RowT],
    where: Sequence[Combinable],
    *,
    order_column: str,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """select_page as {"items": [...], "next_cursor": ...}."""
    clauses = list(where)
    if cursor is not None:
        at, row_id = decode_cursor(cursor)
        clauses.append(WhereRaw(f'("{order_column}", "id") < ({{}}, {{}})', at, row_id))
    shaped = where_shape(clauses)
    if shaped is None:
        page = await select_page(table, out, where, order_column=order_column, limit=limit, cursor=cursor)
        return {"items": [r.model_dump(mode="python") for r in page.items], "next_cursor": page.next_cursor}
    shape, args = shaped
    sql = select_sql(table, out, shape, order=(order_column, "id"), descending=True, limit=limit + 1)
    records = await request_connection(table).fetch(sql, *args)
    next_cursor = None
    if len(records) > limit:
        last = records[limit - 1]
        next_cursor = encode_cursor(last[order_column], last["id"])
    return {"items": [jsonable(out, r, _decoder(table)) for r in records[:limit]], "next_cursor": next_cursor}


async def select_one_json(table: type[Table], out: type[RowT], *where: Combinable) -> Any | None:
    """select_one as a JSON-ready row (None when RLS shows no such row)."""
    shaped = where_shape(where)
    if shaped is None:
        row = await select_one(table, out, *where)
        return None if row is None else row.model_dump(mode="python")
    shape, args = shaped
    record = await request_connection(table).fetchrow(select_sql(table, out, shape, limit=1), *args)
    return None if record is None else jsonable(out, record, _decoder(table))


async def insert_one_json(table: type[Table], row: dict[str, Any], out: type[RowT]) -> Any:
    """insert_rows for one row, answering the JSON-ready row."""
    names = tuple(row)
    args = [_encode(table, name, row[name]) for name in names]
    record = await request_connection(table).fetchrow(insert_sql(table, names, out), *args)
    assert record is not None  # INSERT ... RETURNING answers its row or raises
    return jsonable(out, record, _decoder(table))


def _decoder(table: type[Table]) -> Any:
    return lambda record: _decode(table, record)
