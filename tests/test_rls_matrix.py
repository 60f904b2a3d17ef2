"""Who may do what, at the SQL level, exactly as a request is scoped.

Every case runs in its own transaction (rolled back) on one seeded
database: alice and bob each own one row in every table. "owner" is alice
acting on her row, "other" is bob acting on alice's row, "anon" and
"service_role" act on alice's row. Outcomes: the rows a SELECT returns,
the row count of a write (from its command tag, without RETURNING, whose
SELECT-policy check could mask a missing WITH CHECK), DENIED (a missing
privilege) or RLS (a WITH CHECK policy refusing the new row); both errors
are InsufficientPrivilegeError, which the API turns into 403.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.cluster import Cluster
from tests.conftest import TEMPLATE, create_database, drop_database
from tests.rls_support import DENIED, RLS, SIX_TABLES, World, ids, outcome, seed_world
from tests.support import acting_as

ACTORS = ("owner", "other", "anon", "service_role")


@pytest.fixture(scope="module")
async def world(cluster: Cluster, template_dsn: str) -> AsyncIterator[World]:
    name = f"centrid_rls_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(cluster, name, template=TEMPLATE)
    conn = await asyncpg.connect(dsn)
    try:
        seeded = await seed_world(conn, dsn)
    finally:
        await conn.close()
    yield seeded
    await drop_database(cluster, name)


def _as(world: World, actor: str) -> tuple[Any, str | None]:
    """(role, sub) for an actor."""
    return {
        "owner": ("authenticated", world.alice),
        "other": ("authenticated", world.bob),
        "anon": ("anon", None),
        "service_role": ("service_role", None),
    }[actor]


def _u(value: str) -> uuid.UUID:
    return uuid.UUID(value)


# --------------------------------------------------------------------------
# SELECT: which of the seeded rows each actor sees.

SELECT_VISIBLE = {
    "owner": {"alice"},
    "other": {"bob"},
    "anon": set(),
    "service_role": {"alice", "bob"},
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("table", SIX_TABLES)
async def test_select(world: World, table: str, actor: str) -> None:
    role, sub = _as(world, actor)
    async with acting_as(world.dsn, role, sub) as conn:
        visible = await ids(conn, f"SELECT id FROM {table}")
    users = {"alice": world.alice, "bob": world.bob}
    expected = {world.row(table, users[name]) for name in SELECT_VISIBLE[actor]}
    assert visible == expected


# --------------------------------------------------------------------------
# INSERT / UPDATE / DELETE: each is a statement on alice's data.


def _insert_sql(world: World, table: str, actor: str) -> tuple[str, list[Any]]:
    """Insert a row that belongs to alice (for user_profiles: to carol, who
    has none, so the only possible refusal is a privilege one)."""
    alice = _u(world.alice)
    if table == "user_profiles":
        target = _u(world.carol) if actor == "service_role" else alice
        return "INSERT INTO user_profiles (user_id, name) VALUES ($1, 'x')", [target]
    if table == "documents":
        return (
            "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'n', 't', 1)",
            [alice],
        )
    if table == "document_chunks":
        return (
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, 7, 'x')",
            [_u(world.row("documents", world.alice))],
        )
    if table == "agent_requests":
        return "INSERT INTO agent_requests (user_id, agent_type, content) VALUES ($1, 'edit', 'x')", [alice]
    if table == "agent_sessions":
        return "INSERT INTO agent_sessions (user_id, request_chain) VALUES ($1, '[]')", [alice]
    if table == "usage_events":
        return "INSERT INTO usage_events (user_id, event_type) VALUES ($1, 'x')", [alice]
    raise AssertionError(table)


UPDATE_SET = {
    "user_profiles": "name = 'changed'",
    "documents": "filename = 'changed'",
    "document_chunks": "content = 'changed'",
    "agent_requests": "content = 'changed'",
    "agent_sessions": "context_state = '{\"changed\": true}'",
    "usage_events": "event_type = 'changed'",
}

INSERT_EXPECTED: dict[str, dict[str, int | str]] = {
    # user_profiles: created by the auth trigger only; usage_events: the service's.
    "user_profiles": {"owner": DENIED, "other": DENIED, "anon": DENIED, "service_role": 1},
    "documents": {"owner": 1, "other": RLS, "anon": DENIED, "service_role": 1},
    "document_chunks": {"owner": 1, "other": RLS, "anon": DENIED, "service_role": 1},
    "agent_requests": {"owner": 1, "other": RLS, "anon": DENIED, "service_role": 1},
    "agent_sessions": {"owner": 1, "other": RLS, "anon": DENIED, "service_role": 1},
    "usage_events": {"owner": DENIED, "other": DENIED, "anon": DENIED, "service_role": 1},
}

UPDATE_EXPECTED: dict[str, dict[str, int | str]] = {
    "user_profiles": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "documents": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "document_chunks": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "agent_requests": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "agent_sessions": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    # Insert-only, for everyone.
    "usage_events": {"owner": DENIED, "other": DENIED, "anon": DENIED, "service_role": DENIED},
}

DELETE_EXPECTED: dict[str, dict[str, int | str]] = {
    # A profile goes only with its auth user (cascade).
    "user_profiles": {"owner": DENIED, "other": DENIED, "anon": DENIED, "service_role": 1},
    "documents": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "document_chunks": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "agent_requests": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "agent_sessions": {"owner": 1, "other": 0, "anon": DENIED, "service_role": 1},
    "usage_events": {"owner": DENIED, "other": DENIED, "anon": DENIED, "service_role": DENIED},
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("table", SIX_TABLES)
async def test_insert(world: World, table: str, actor: str) -> None:
    role, sub = _as(world, actor)
    sql, args = _insert_sql(world, table, actor)
    async with acting_as(world.dsn, role, sub) as conn:
        assert await outcome(conn, sql, *args) == INSERT_EXPECTED[table][actor]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("table", SIX_TABLES)
async def test_update(world: World, table: str, actor: str) -> None:
    role, sub = _as(world, actor)
    row = _u(world.row(table, world.alice))
    async with acting_as(world.dsn, role, sub) as conn:
        result = await outcome(conn, f"UPDATE {table} SET {UPDATE_SET[table]} WHERE id = $1", row)
    assert result == UPDATE_EXPECTED[table][actor]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("table", SIX_TABLES)
async def test_delete(world: World, table: str, actor: str) -> None:
    role, sub = _as(world, actor)
    row = _u(world.row(table, world.alice))
    async with acting_as(world.dsn, role, sub) as conn:
        result = await outcome(conn, f"DELETE FROM {table} WHERE id = $1", row)
    assert result == DELETE_EXPECTED[table][actor]


async def test_other_users_rows_are_untouched_by_their_attempts(world: World) -> None:
    """Bob's UPDATE and DELETE of alice's rows affect nothing, even when
    committed; alice still sees her rows unchanged."""
    async with acting_as(world.dsn, "authenticated", world.bob, commit=True) as conn:
        for table in SIX_TABLES:
            if table in ("user_profiles", "usage_events"):
                continue
            row = _u(world.row(table, world.alice))
            assert await conn.execute(f"UPDATE {table} SET {UPDATE_SET[table]} WHERE id = $1", row) == "UPDATE 0"
            assert await conn.execute(f"DELETE FROM {table} WHERE id = $1", row) == "DELETE 0"
        assert await conn.execute("UPDATE user_profiles SET name = 'hijacked' WHERE user_id = $1", _u(world.alice)) == "UPDATE 0"
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        assert await conn.fetchval("SELECT name FROM user_profiles") == "Alice"
        assert await conn.fetchval("SELECT filename FROM documents") == "notes.txt"
        assert await conn.fetchval("SELECT content FROM document_chunks") == "cats sleep"
        assert await conn.fetchval("SELECT content FROM agent_requests") == "why"


# --------------------------------------------------------------------------
# Ownership can't be forged or moved.

MOVE_OWNER = {
    "user_profiles": "UPDATE user_profiles SET user_id = $2 WHERE id = $1",
    "documents": "UPDATE documents SET user_id = $2 WHERE id = $1",
    "agent_requests": "UPDATE agent_requests SET user_id = $2 WHERE id = $1",
    "agent_sessions": "UPDATE agent_sessions SET user_id = $2 WHERE id = $1",
    "usage_events": "UPDATE usage_events SET user_id = $2 WHERE id = $1",
}


@pytest.mark.parametrize("table", sorted(MOVE_OWNER))
async def test_moving_a_row_to_another_owner_fails(world: World, table: str) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        result = await outcome(conn, MOVE_OWNER[table], _u(world.row(table, world.alice)), _u(world.bob))
    assert result in (DENIED, RLS)


async def test_moving_a_chunk_to_another_users_document_fails(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        result = await outcome(
            conn,
            "UPDATE document_chunks SET document_id = $2 WHERE id = $1",
            _u(world.row("document_chunks", world.alice)),
            _u(world.row("documents", world.bob)),
        )
    assert result in (DENIED, RLS)


async def test_moving_a_chunk_into_another_users_document_blocked_by_policy_too(world: World) -> None:
    """Even with the column privilege (granted inside the rolled-back
    transaction), the policies refuse the move: the UPDATE policy's WITH
    CHECK, and the SELECT policy PostgreSQL also applies to the new row of
    an UPDATE that reads the table."""
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        await conn.execute("RESET ROLE")
        await conn.execute("GRANT UPDATE (document_id) ON document_chunks TO authenticated")
        await conn.execute("SET LOCAL ROLE authenticated")
        result = await outcome(
            conn,
            "UPDATE document_chunks SET document_id = $2 WHERE id = $1",
            _u(world.row("document_chunks", world.alice)),
            _u(world.row("documents", world.bob)),
        )
    assert result == RLS


@pytest.mark.parametrize("table", ["user_profiles", "documents", "agent_requests", "agent_sessions"])
async def test_moving_a_row_blocked_by_policy_too(world: World, table: str) -> None:
    """Policies alone (no column privilege in the way) refuse a new owner."""
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        await conn.execute("RESET ROLE")
        await conn.execute(f"GRANT UPDATE (user_id) ON {table} TO authenticated")
        await conn.execute("SET LOCAL ROLE authenticated")
        result = await outcome(
            conn, MOVE_OWNER[table], _u(world.row(table, world.alice)), _u(world.bob)
        )
    assert result == RLS


CREATE_FOR_OTHER = {
    "documents": "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'n', 't', 1)",
    "agent_requests": "INSERT INTO agent_requests (user_id, agent_type, content) VALUES ($1, 'edit', 'x')",
    "agent_sessions": "INSERT INTO agent_sessions (user_id) VALUES ($1)",
}


@pytest.mark.parametrize("table", sorted(CREATE_FOR_OTHER))
async def test_creating_a_row_for_another_user_fails(world: World, table: str) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        assert await outcome(conn, CREATE_FOR_OTHER[table], _u(world.bob)) == RLS


async def test_inserting_a_chunk_into_another_users_document_fails(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        result = await outcome(
            conn,
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, 5, 'x')",
            _u(world.row("documents", world.bob)),
        )
    assert result == RLS


async def test_inserting_a_chunk_into_a_missing_document_fails(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        result = await outcome(
            conn,
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, 5, 'x')",
            uuid.uuid4(),
        )
    assert result == RLS


# --------------------------------------------------------------------------
# Column privileges: what only the service writes.

BILLING = [("plan_type", "pro"), ("usage_count", 0), ("subscription_status", "cancelled")]


@pytest.mark.parametrize("column,value", BILLING, ids=[c for c, _ in BILLING])
async def test_user_cannot_change_own_billing_fields(world: World, column: str, value: Any) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        result = await outcome(conn, f"UPDATE user_profiles SET {column} = $1", value)
    assert result == DENIED
    async with acting_as(world.dsn, "service_role") as conn:
        result = await outcome(
            conn, f"UPDATE user_profiles SET {column} = $1 WHERE user_id = $2", value, _u(world.alice)
        )
    assert result == 1


async def test_user_can_rename_self(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        rows = await conn.fetch("UPDATE user_profiles SET name = 'Alicia' RETURNING user_id::text, name, usage_count")
        assert [tuple(r) for r in rows] == [(world.alice, "Alicia", 5)]


async def test_user_cannot_write_usage_events(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        assert await outcome(conn, "INSERT INTO usage_events (event_type) VALUES ('free_tokens')") == DENIED


SERVICE_FIELDS = [("status", "completed"), ("progress", 1.0), ("results", json.dumps({"ok": True})), ("token_cost", 42)]


@pytest.mark.parametrize("column,value", SERVICE_FIELDS, ids=[c for c, _ in SERVICE_FIELDS])
async def test_only_service_sets_agent_request_results(world: World, column: str, value: Any) -> None:
    row = _u(world.row("agent_requests", world.alice))
    cast = "::jsonb" if column == "results" else ""
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        assert await outcome(conn, f"UPDATE agent_requests SET {column} = $2{cast} WHERE id = $1", row, value) == DENIED
    async with acting_as(world.dsn, "authenticated", world.alice) as conn:
        # Nor can a request be created already "done".
        result = await outcome(
            conn, f"INSERT INTO agent_requests (agent_type, content, {column}) VALUES ('edit', 'x', $1{cast})", value
        )
        assert result == DENIED
    async with acting_as(world.dsn, "service_role") as conn:
        got = await conn.fetchval(
            f"UPDATE agent_requests SET {column} = $2{cast} WHERE id = $1 RETURNING {column}", row, value
        )
        assert (json.dumps(json.loads(got)) if column == "results" else got) == value


@pytest.mark.parametrize("statement", ["UPDATE usage_events SET cost = 0", "DELETE FROM usage_events"])
async def test_usage_events_immutable_even_for_service_role(world: World, statement: str) -> None:
    for role in ("service_role", "centrid_admin"):
        async with acting_as(world.dsn, role) as conn:
            assert await outcome(conn, statement) == DENIED


# --------------------------------------------------------------------------
# Outside the six tables.

INTERNAL = ("migration", "piccolo_user", "sessions", "auth.users")


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
@pytest.mark.parametrize("table", INTERNAL)
async def test_internal_tables_out_of_reach(world: World, table: str, role: Any) -> None:
    sub = world.alice if role == "authenticated" else None
    async with acting_as(world.dsn, role, sub) as conn:
        assert await outcome(conn, f"SELECT * FROM {table}") == DENIED


@pytest.mark.parametrize("table", SIX_TABLES)
async def test_admin_role_sees_every_row(world: World, table: str) -> None:
    async with acting_as(world.dsn, "centrid_admin") as conn:
        visible = await ids(conn, f"SELECT id FROM {table}")
    assert visible == {world.row(table, world.alice), world.row(table, world.bob)}


async def test_authenticated_without_sub_sees_and_writes_nothing(world: World) -> None:
    async with acting_as(world.dsn, "authenticated", None) as conn:
        for table in SIX_TABLES:
            assert await ids(conn, f"SELECT id FROM {table}") == set(), table
        result = await outcome(
            conn, "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'n', 't', 1)", _u(world.alice)
        )
        assert result == RLS
