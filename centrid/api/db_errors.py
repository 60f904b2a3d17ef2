"""Database outcomes -> the contract's statuses.

The database is the judge (RLS, grants, constraints); this module only
translates its verdict: a privilege error is 403 (401 for anon), a CHECK,
NOT NULL, foreign-key or bad-value error is 422 naming the field, a unique
violation is 409, a timeout or lost connection is 503.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg

from centrid.errors import ApiError, conflict, database_down, database_unavailable, forbidden, unauthorized, validation_error
from centrid.schema.roles import ANON, API_ROLES
from centrid.schema.tables import TABLE_NAMES

log = logging.getLogger("centrid.error")

# Our constraint names follow PostgreSQL's own convention:
# <table>_<column>_check / _fkey / _key, for every registered table.
_CONSTRAINT = re.compile(
    "^(?P<table>" + "|".join(re.escape(t) for t in sorted(TABLE_NAMES, key=len, reverse=True)) + ")_"
    r"(?P<column>.+)_(?P<kind>check|fkey|key)$"
)

# Composite constraints: the field a client can change to resolve them.
_COMPOSITE_FIELD = {"document_chunks_document_id_chunk_index_key": "chunk_index"}


def _field_of(exc: asyncpg.PostgresError) -> str | None:
    column: str | None = getattr(exc, "column_name", None)
    if column:
        return column
    name: str | None = getattr(exc, "constraint_name", None)
    if name:
        if name in _COMPOSITE_FIELD:
            return _COMPOSITE_FIELD[name]
        match = _CONSTRAINT.match(name)
        if match:
            return match.group("column")
    return None


# (role, table, "INSERT" | "UPDATE") -> the columns that role may write, as
# the database grants them; read once at start (load_column_privileges).
# Only used to word a 403 the database already decided.
_WRITABLE: dict[tuple[str, str, str], frozenset[str]] = {}

_COLUMN_PRIVILEGES_SQL = """
SELECT r.rolname AS role, c.relname AS table_name, p.privilege, a.attname AS column_name
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN pg_roles r
CROSS JOIN (VALUES ('INSERT'), ('UPDATE')) AS p(privilege)
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
  AND r.rolname = ANY($1::text[])
  AND has_column_privilege(r.oid, c.oid, a.attnum, p.privilege)
"""


async def load_column_privileges(conn: asyncpg.Connection | Any) -> None:
    writable: dict[tuple[str, str, str], set[str]] = {}
    for row in await conn.fetch(_COLUMN_PRIVILEGES_SQL, list(API_ROLES)):
        writable.setdefault((row["role"], row["table_name"], row["privilege"]), set()).add(row["column_name"])
    _WRITABLE.clear()
    _WRITABLE.update({key: frozenset(columns) for key, columns in writable.items()})


def _forbidden_fields(role: str | None, fields: list[str] | None, writes: tuple[str, str] | None) -> list[str] | None:
    """The supplied fields the role may not write; all of them when the
    grants are unknown (or none of them is refused column by column)."""
    if not fields:
        return None
    if role is None or writes is None or not _WRITABLE:
        return sorted(fields)
    allowed = _WRITABLE.get((role, *writes), frozenset())
    refused = sorted(f for f in fields if f not in allowed)
    return refused or sorted(fields)


def map_database_error(
    exc: asyncpg.PostgresError,
    role: str | None,
    fields: list[str] | None = None,
    writes: tuple[str, str] | None = None,
) -> ApiError:
    if database_down(exc):
        # e.g. ConnectionDoesNotExistError from a query inside a handler
        # when the server crashed: not the request's fault, and retryable.
        return database_unavailable()
    field = _field_of(exc)
    # Never PostgreSQL's own text: it names relations and constraints.
    detail: dict[str, Any] = {"field": field, "message": "is not allowed"}
    if isinstance(exc, asyncpg.exceptions.InsufficientPrivilegeError):
        if role == ANON:
            return unauthorized("sign in to do this")
        if "row-level security" in str(exc):
            return forbidden("this row may not be created for, or moved to, another owner")
        return forbidden(
            "you may not write one or more of these fields",
            {"fields": _forbidden_fields(role, fields, writes)},
        )
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        detail["message"] = "a row with this value already exists"
        return conflict("a row with these values already exists", [detail])
    if isinstance(
        exc,
        (
            asyncpg.exceptions.CheckViolationError,
            asyncpg.exceptions.NotNullViolationError,
            asyncpg.exceptions.ForeignKeyViolationError,
        ),
    ):
        if isinstance(exc, asyncpg.exceptions.ForeignKeyViolationError):
            detail["message"] = "refers to a row that does not exist"
        elif isinstance(exc, asyncpg.exceptions.NotNullViolationError):
            # e.g. a service_role create that leaves out user_id (its
            # default, the token's sub, is null for a service key).
            detail["message"] = "is required and may not be null"
        else:
            detail["message"] = "is not an allowed value"
        return validation_error([detail])
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return ApiError(503, "timeout", "the database took too long to answer")
    if isinstance(exc, (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)):
        return conflict("concurrent change; retry")
    if isinstance(exc, asyncpg.exceptions.DataError):
        # Values PostgreSQL cannot take (out of range, bad text...). Input
        # models rule out the ones we know; don't echo driver internals.
        log.warning("data error reached the database: %s", exc)
        return validation_error([{"field": field, "message": "a value is out of range for its column"}])
    log.error("unmapped database error %s: %s", type(exc).__name__, exc)
    return ApiError(500, "internal_error", "internal error")
