"""Putting a caller's identity on a transaction.

Everything is set with `set_config(..., is_local => true)`: it ends with the
transaction, so nothing survives into the next use of a pooled connection,
and it works behind PgBouncer in transaction mode. `role` via set_config is
`SET LOCAL ROLE`; PostgreSQL checks that the login role may assume it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from centrid.schema import roles
from centrid.schema.roles import ALL_ROLES as ROLES, Role as Role  # noqa: E402  (named once)


@dataclass(frozen=True)
class Caller:
    role: Role
    sub: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def claims_json(self) -> str:
        """The claims as `request.jwt.claims` carries them, with role and sub
        filled in; computed once per Caller (a cached token's Caller is reused)."""
        claims = dict(self.claims)
        claims.setdefault("role", self.role)
        if self.sub is not None:
            claims.setdefault("sub", self.sub)
        return json.dumps(claims, separators=(",", ":"))


ANON = Caller(role=roles.ANON)

_SCOPE_SQL = """
SELECT set_config('request.jwt.claims', $1, true),
       set_config('request.jwt.claim.sub', $2, true),
       set_config('request.jwt.claim.role', $3, true),
       set_config('statement_timeout', $4, true),
       set_config('role', $3, true)
"""


async def enter_scope(
    conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record], caller: Caller, *, statement_timeout_ms: int = 0) -> None:
    """Within an open transaction on `conn`, become `caller`."""
    if caller.role not in ROLES:
        raise ValueError(f"unknown role {caller.role!r}")
    await conn.execute(_SCOPE_SQL, caller.claims_json, caller.sub or "", caller.role, str(statement_timeout_ms))


def sql_literal(value: str) -> str:
    """`value` as a PostgreSQL string constant, as quote_literal() writes it:
    an E'' string with backslashes and quotes doubled, right whatever
    standard_conforming_strings says. NUL cannot occur: the claims JSON
    escapes control characters and sub is a UUID."""
    if "\x00" in value:
        raise ValueError("NUL cannot travel in a PostgreSQL string")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def begin_scope_sql(caller: Caller, *, read_only: bool, statement_timeout_ms: int = 0) -> str:
    """BEGIN and `enter_scope` as one simple-protocol message: one round
    trip instead of two. Every value is a literal (the simple protocol takes
    no parameters), quoted by `sql_literal`; the role is one of ROLES."""
    if caller.role not in ROLES:
        raise ValueError(f"unknown role {caller.role!r}")
    role = sql_literal(caller.role)
    return (
        ("BEGIN READ ONLY;" if read_only else "BEGIN;")
        + f"SELECT set_config('request.jwt.claims', {sql_literal(caller.claims_json)}, true),"
        f" set_config('request.jwt.claim.sub', {sql_literal(caller.sub or '')}, true),"
        f" set_config('request.jwt.claim.role', {role}, true),"
        f" set_config('statement_timeout', '{int(statement_timeout_ms)}', true),"
        f" set_config('role', {role}, true)"
    )


async def begin_scope(
    conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record],
    caller: Caller,
    *,
    read_only: bool,
    statement_timeout_ms: int = 0,
) -> None:
    """Open a transaction on `conn` (READ ONLY for reads) and become `caller`
    in it; end it with COMMIT or ROLLBACK. Same settings as enter_scope."""
    await conn.execute(begin_scope_sql(caller, read_only=read_only, statement_timeout_ms=statement_timeout_ms))
