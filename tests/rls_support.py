"""Helpers shared by the schema, RLS and fail-closed tests.

`module_db` is one migrated database for a whole test module, for tests
that only read the catalog or work inside rolled-back transactions (a fresh
database per test costs ~0.3 s; the RLS matrix alone has ~100 cases).
`seed_world` gives two users a row in every table, so a test can tell
"sees only their own rows" from "sees nothing" and "sees everything".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.cluster import Cluster
from tests.conftest import TEMPLATE, MigratedDB, create_database, drop_database
from tests.support import SIX_TABLES, create_user


# Outcomes of a statement run under some role.
DENIED = "permission denied"  # InsufficientPrivilegeError from a missing grant
RLS = "row-level security"  # InsufficientPrivilegeError from a WITH CHECK policy


@pytest.fixture(scope="module")
async def module_db(cluster: Cluster, template_dsn: str) -> AsyncIterator[MigratedDB]:
    name = f"centrid_mod_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(cluster, name, template=TEMPLATE)
    owner = await asyncpg.connect(dsn)
    try:
        yield MigratedDB(dsn=dsn, owner=owner)
    finally:
        await owner.close()
        await drop_database(cluster, name)


@dataclass
class World:
    """Who owns what in a seeded database: rows[table][user] is a row id
    (for user_profiles, the profile's id)."""

    dsn: str
    alice: str
    bob: str
    carol: str  # an auth user whose profile was deleted, so one may be inserted
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def row(self, table: str, user: str) -> str:
        return self.rows[table][user]


async def insert_document(conn: asyncpg.Connection, user_id: str, content_text: str | None = "cats and dogs") -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO documents (user_id, filename, file_type, file_size, content_text) "
            "VALUES ($1, 'notes.txt', 'text/plain', 10, $2) RETURNING id",
            uuid.UUID(user_id),
            content_text,
        )
    )


async def insert_chunk(conn: asyncpg.Connection, document_id: str, index: int = 0, content: str = "cats sleep") -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, $2, $3) RETURNING id",
            uuid.UUID(document_id),
            index,
            content,
        )
    )


async def insert_request(conn: asyncpg.Connection, user_id: str) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO agent_requests (user_id, agent_type, content) VALUES ($1, 'research', 'why') RETURNING id",
            uuid.UUID(user_id),
        )
    )


async def insert_session(conn: asyncpg.Connection, user_id: str) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO agent_sessions (user_id) VALUES ($1) RETURNING id",
            uuid.UUID(user_id),
        )
    )


async def insert_usage(conn: asyncpg.Connection, user_id: str) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO usage_events (user_id, event_type, tokens_used, cost, metadata) "
            "VALUES ($1, 'agent_run', 10, 0.5, $2::jsonb) RETURNING id",
            uuid.UUID(user_id),
            json.dumps({"model": "m"}),
        )
    )


async def seed_user_rows(conn: asyncpg.Connection, user_id: str) -> dict[str, str]:
    """One row in each of the six tables for `user_id` (as the owner)."""
    doc = await insert_document(conn, user_id)
    return {
        "user_profiles": str(await conn.fetchval("SELECT id FROM user_profiles WHERE user_id = $1", uuid.UUID(user_id))),
        "documents": doc,
        "document_chunks": await insert_chunk(conn, doc),
        "agent_requests": await insert_request(conn, user_id),
        "agent_sessions": await insert_session(conn, user_id),
        "usage_events": await insert_usage(conn, user_id),
    }


async def seed_world(conn: asyncpg.Connection, dsn: str) -> World:
    alice = await create_user(conn, name="Alice")
    bob = await create_user(conn, name="Bob")
    carol = await create_user(conn, name="Carol")
    await conn.execute("DELETE FROM user_profiles WHERE user_id = $1", uuid.UUID(carol))
    # Something for a user to try to reset.
    await conn.execute("UPDATE user_profiles SET usage_count = 5 WHERE user_id = $1", uuid.UUID(alice))
    world = World(dsn=dsn, alice=alice, bob=bob, carol=carol)
    per_user = {alice: await seed_user_rows(conn, alice), bob: await seed_user_rows(conn, bob)}
    for table in SIX_TABLES:
        world.rows[table] = {user: rows[table] for user, rows in per_user.items()}
    return world


async def outcome(conn: asyncpg.Connection, sql: str, *args: Any) -> int | str:
    """Rows affected (from the command tag), or DENIED / RLS.

    No RETURNING: that would also apply SELECT policies to the new row and
    could mask a missing WITH CHECK."""
    try:
        status = await conn.execute(sql, *args)
    except asyncpg.exceptions.InsufficientPrivilegeError as exc:
        message = str(exc)
        if "row-level security" in message:
            return RLS
        assert "permission denied" in message, message
        return DENIED
    return int(status.split()[-1])


async def ids(conn: asyncpg.Connection, sql: str, *args: Any) -> set[str]:
    return {str(r[0]) for r in await conn.fetch(sql, *args)}


async def identity(conn: Any, *, login: bool = False) -> dict[str, object]:
    """Who a connection is right now: its role, claims and auth.uid() (and,
    with `login`, the login it connected as). Fail-closed tests compare it
    with the anonymous identity between requests."""
    row = await conn.fetchrow(
        f"""
        SELECT current_user::text AS role,
               {"session_user::text AS login," if login else ""}
               coalesce(current_setting('request.jwt.claims', true), '') AS claims,
               coalesce(current_setting('request.jwt.claim.sub', true), '') AS sub,
               coalesce(current_setting('request.jwt.claim.role', true), '') AS claim_role,
               auth.uid() AS uid
        """
    )
    assert row is not None
    return dict(row)


async def visible_rows(conn: Any) -> dict[str, int]:
    """How many rows of each table the connection's role and claims can see."""
    return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in SIX_TABLES}
