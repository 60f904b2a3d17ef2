"""Each table's WITH CHECK, proven on its own.

Moving a row to another owner is stopped by three walls: the column grant
(users may not write `user_id` / `document_id`), the UPDATE policy's WITH
CHECK, and - only when the statement reads the table (a WHERE, RETURNING)
- the SELECT policy PostgreSQL then also applies to the new row. An
`UPDATE t SET user_id = $1 WHERE id = $2` is therefore refused by the SELECT
policy even when WITH CHECK is `true`, and proves nothing about WITH CHECK.

So every statement here has no WHERE, no RETURNING and a constant
right-hand side: the UPDATE policy's USING picks the caller's own rows and
only its WITH CHECK judges the new ones. For each table, in one transaction
scoped as the request scope scopes it (claims and role set LOCAL by
`enter_scope`) and rolled back at the end:

1. with the real grants the move is refused by the column grant;
2. with the column granted (a grant mistake) it is refused by RLS;
3. with the table's UPDATE policy also weakened to `WITH CHECK (true)`, the
   same statement moves the caller's row - so step 2 is known to be the
   WITH CHECK's doing.

Chunks have two more walls of their own, from the owner they copy from
their document: the trigger (run as the caller, it cannot read Bob's
document, so the copied owner is NULL) and the composite foreign key. The
control takes those away too, after showing the first still holds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest

from centrid.request.claims import Caller, enter_scope
from tests.conftest import MigratedDB
from tests.rls_support import DENIED, RLS, World, module_db, outcome, seed_world

__all__ = ["module_db"]


@pytest.fixture(scope="module")
async def world(module_db: MigratedDB) -> World:
    """Shared by the module; every test rolls back everything it does."""
    return await seed_world(module_db.owner, module_db.dsn)


@dataclass(frozen=True)
class Move:
    """A statement moving every row the caller may update to someone else."""

    table: str
    column: str  # the ownership column the statement rewrites
    sql: str  # $1: the new owner (a user id, or for chunks a document id)
    # Statements (as the owner) that take away walls other than the policy.
    other_walls: tuple[str, ...] = ()

    def target(self, world: World) -> uuid.UUID:
        if self.table == "document_chunks":
            return uuid.UUID(world.row("documents", world.bob))
        # Profiles are one per user: move Alice's to Carol, who has none.
        return uuid.UUID(world.carol if self.table == "user_profiles" else world.bob)


MOVES = {
    m.table: m
    for m in (
        Move("user_profiles", "user_id", "UPDATE user_profiles SET user_id = $1"),
        Move("documents", "user_id", "UPDATE documents SET user_id = $1"),
        # chunk_index too, so the move cannot collide with Bob's chunk 0.
        Move(
            "document_chunks",
            "document_id",
            "UPDATE document_chunks SET document_id = $1, chunk_index = 100",
            other_walls=(
                "ALTER TABLE document_chunks DISABLE TRIGGER document_chunks_user_id_from_documents",
                "ALTER TABLE document_chunks DROP CONSTRAINT document_chunks_user_id_from_documents_fkey",
            ),
        ),
        Move("agent_requests", "user_id", "UPDATE agent_requests SET user_id = $1"),
        Move("agent_sessions", "user_id", "UPDATE agent_sessions SET user_id = $1"),
    )
}


@asynccontextmanager
async def scoped_as_alice(world: World) -> AsyncIterator[asyncpg.Connection]:
    """A transaction scoped as a request by Alice; rolled back at the end."""
    conn = await asyncpg.connect(world.dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            await enter_scope(conn, Caller(role="authenticated", sub=world.alice))
            yield conn
        finally:
            await tx.rollback()
    finally:
        await conn.close()


async def as_owner(conn: asyncpg.Connection) -> None:
    """Back to the login (the superuser that migrated), inside the transaction."""
    await conn.execute("RESET ROLE")


async def as_alice(conn: asyncpg.Connection) -> None:
    """`authenticated` again; the LOCAL claims set by enter_scope are still there."""
    await conn.execute("SELECT set_config('role', 'authenticated', true)")
    assert await conn.fetchval("SELECT current_user") == "authenticated"
    assert await conn.fetchval("SELECT auth.uid()::text") is not None


async def attempt(conn: asyncpg.Connection, sql: str, *args: object) -> int | str:
    """outcome() inside a savepoint, so a refusal leaves the transaction usable."""
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        return await outcome(conn, sql, *args)
    finally:
        await savepoint.rollback()


async def owners(conn: asyncpg.Connection, move: Move, world: World) -> dict[str, str]:
    """Alice's row -> its ownership column, read as the owner (sees everything)."""
    row_id = uuid.UUID(world.row(move.table, world.alice))
    value = await conn.fetchval(f"SELECT {move.column}::text FROM {move.table} WHERE id = $1", row_id)
    return {str(row_id): str(value)}


async def update_policy(conn: asyncpg.Connection, table: str) -> str:
    rows = await conn.fetch(
        "SELECT policyname, with_check FROM pg_policies "
        "WHERE schemaname = 'public' AND tablename = $1 AND cmd = 'UPDATE' AND 'authenticated' = ANY(roles)",
        table,
    )
    assert len(rows) == 1, f"{table}: expected one UPDATE policy for authenticated, found {rows}"
    assert rows[0]["with_check"], f"{table}: its UPDATE policy has no WITH CHECK"
    return str(rows[0]["policyname"])


@pytest.mark.parametrize("table", sorted(MOVES))
async def test_with_check_alone_refuses_moving_a_row_to_another_owner(world: World, table: str) -> None:
    move = MOVES[table]
    target = move.target(world)
    async with scoped_as_alice(world) as conn:
        await as_owner(conn)
        before = await owners(conn, move, world)
        policy = await update_policy(conn, table)
        await as_alice(conn)

        # 1. The real grants: the ownership column is not the user's to write.
        assert await attempt(conn, move.sql, target) == DENIED

        # 2. With the column granted, the policy's WITH CHECK refuses the new row.
        await as_owner(conn)
        await conn.execute(f"GRANT UPDATE ({move.column}) ON {table} TO authenticated")
        await as_alice(conn)
        assert await attempt(conn, move.sql, target) == RLS
        await as_owner(conn)
        assert await owners(conn, move, world) == before, "a refused move moved the row"

        # 3. The control: weaken that WITH CHECK and the same statement moves
        #    Alice's row (and only hers: USING still picks the rows).
        await conn.execute(f"ALTER POLICY {policy} ON {table} WITH CHECK (true)")
        if move.other_walls:
            await as_alice(conn)
            savepoint = conn.transaction()
            await savepoint.start()
            with pytest.raises(asyncpg.NotNullViolationError):
                await conn.execute(move.sql, target)
            await savepoint.rollback()
            await as_owner(conn)
            for sql in move.other_walls:
                await conn.execute(sql)
        await as_alice(conn)
        assert await outcome(conn, move.sql, target) == 1
        await as_owner(conn)
        assert await owners(conn, move, world) == {k: str(target) for k in before}


async def test_usage_events_have_no_update_policy_to_weaken(world: World) -> None:
    """The sixth table: users have neither an UPDATE grant nor an UPDATE
    policy on the ledger, so even a granted column updates nothing."""
    sql = "UPDATE usage_events SET user_id = $1"
    target = uuid.UUID(world.bob)
    async with scoped_as_alice(world) as conn:
        await as_owner(conn)
        policies = await conn.fetchval(
            "SELECT count(*) FROM pg_policies WHERE tablename = 'usage_events' AND cmd IN ('UPDATE', 'ALL')"
        )
        assert policies == 0
        await as_alice(conn)
        assert await attempt(conn, sql, target) == DENIED
        await as_owner(conn)
        await conn.execute("GRANT UPDATE (user_id) ON usage_events TO authenticated")
        await as_alice(conn)
        assert await attempt(conn, sql, target) == 0
        # The control: Alice's event is there to be updated, had a policy allowed it.
        assert await conn.fetchval("SELECT count(*) FROM usage_events") == 1
