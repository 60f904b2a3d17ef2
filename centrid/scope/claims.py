"""Putting a caller's identity on a transaction.

Everything is set with `set_config(..., is_local => true)`: it ends with the
transaction, so nothing survives into the next use of a pooled connection,
and it works behind PgBouncer in transaction mode. `role` via set_config is
`SET LOCAL ROLE`; PostgreSQL checks that the login role may assume it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Role = Literal["anon", "authenticated", "service_role", "centrid_admin"]
ROLES: tuple[Role, ...] = ("anon", "authenticated", "service_role", "centrid_admin")


@dataclass(frozen=True)
class Caller:
    role: Role
    sub: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


ANON = Caller(role="anon")

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
    claims = dict(caller.claims)
    claims.setdefault("role", caller.role)
    if caller.sub is not None:
        claims.setdefault("sub", caller.sub)
    await conn.execute(
        _SCOPE_SQL,
        json.dumps(claims, separators=(",", ":")),
        caller.sub or "",
        caller.role,
        str(statement_timeout_ms),
    )
