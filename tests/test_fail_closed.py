"""Fail closed: outside a request scope a connection is `anon`, and a
request's identity never outlives its transaction.

The server opens its pool with asyncpg `server_settings={"role": "anon"}`:
the login role may assume every API role, but a session starts as anon.
Each request sets its role and claims with `set_config(..., is_local =>
true)` (centrid.request.claims), so they end with the transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from centrid.request.claims import Caller, enter_scope
from tests.conftest import MigratedDB
from tests.rls_support import DENIED, SIX_TABLES, World, identity, module_db, outcome, seed_world, visible_rows

__all__ = ["module_db"]

SERVER_SETTINGS = {"role": "anon"}


@asynccontextmanager
async def server_connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection opened the way the server's pool opens them."""
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def world(module_db: MigratedDB) -> World:
    """Shared by the module: tests commit nothing but profile names, and
    compare those with what they read first."""
    return await seed_world(module_db.owner, module_db.dsn)


# A plain connection or one from a pool.

ANON_IDENTITY = {"role": "anon", "claims": "", "sub": "", "claim_role": "", "uid": None}


NOTHING = {t: 0 for t in SIX_TABLES}


async def test_unscoped_connection_is_anon_and_sees_no_user_rows(world: World) -> None:
    async with server_connection(world.dsn) as conn:
        assert await identity(conn) == ANON_IDENTITY
        # The login role is the superuser; the session still runs as anon.
        assert await conn.fetchval("SELECT session_user") != "anon"
        assert await visible_rows(conn) == NOTHING
        # Also inside a transaction nobody scoped ("a forgotten transaction").
        async with conn.transaction():
            assert await visible_rows(conn) == NOTHING


async def test_the_rows_exist(world: World, module_db: MigratedDB) -> None:
    """The control for the test above: the owner sees two rows per table."""
    assert await visible_rows(module_db.owner) == {t: 2 for t in SIX_TABLES}


async def test_unscoped_connection_cannot_write(world: World) -> None:
    alice = uuid.UUID(world.alice)
    doc = uuid.UUID(world.row("documents", world.alice))
    async with server_connection(world.dsn) as conn:
        statements: list[tuple[str, tuple[object, ...]]] = [
            ("INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'n', 't', 1)", (alice,)),
            ("INSERT INTO usage_events (user_id, event_type) VALUES ($1, 'x')", (alice,)),
            ("UPDATE documents SET filename = 'x' WHERE id = $1", (doc,)),
            ("UPDATE user_profiles SET plan_type = 'pro'", ()),
            ("DELETE FROM documents WHERE id = $1", (doc,)),
            ("DELETE FROM agent_sessions", ()),
            ("INSERT INTO auth.users (email) VALUES ('x@example.test')", ()),
            ("SELECT * FROM auth.users", ()),
            ("SELECT * FROM migration", ()),
            ("SELECT * FROM piccolo_user", ()),
            ("SELECT * FROM sessions", ()),
        ]
        for sql, args in statements:
            assert await outcome(conn, sql, *args) == DENIED, sql


async def test_enter_scope_outside_a_transaction_does_not_stick(world: World) -> None:
    """Without a transaction, each statement is its own: the LOCAL settings
    die with the scoping statement itself."""
    async with server_connection(world.dsn) as conn:
        await enter_scope(conn, Caller(role="service_role", sub=world.alice))
        assert await identity(conn) == ANON_IDENTITY
        assert await visible_rows(conn) == NOTHING


@pytest.mark.parametrize("ending", ["commit", "rollback", "error"])
@pytest.mark.parametrize("role", ["authenticated", "service_role", "centrid_admin"])
async def test_scope_ends_with_its_transaction(world: World, module_db: MigratedDB, role: str, ending: str) -> None:
    alice = uuid.UUID(world.alice)
    new_name = f"{role}-{ending}"
    name_before = await module_db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", alice)
    caller = Caller(role=role, sub=world.alice)  # type: ignore[arg-type]
    async with server_connection(world.dsn) as conn:
        timeout_before = await conn.fetchval("SHOW statement_timeout")
        tr = conn.transaction()
        await tr.start()
        try:
            await enter_scope(conn, caller, statement_timeout_ms=1234)
            inside = await identity(conn)
            assert inside["role"] == role
            assert inside["uid"] == alice
            assert json.loads(str(inside["claims"])) == {"role": role, "sub": world.alice}
            assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
            assert await conn.fetchval("SELECT count(*) FROM documents") >= 1
            renamed = await conn.execute("UPDATE user_profiles SET name = $2 WHERE user_id = $1", alice, new_name)
            assert renamed == "UPDATE 1"
            if ending == "error":
                with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                    await conn.execute("SELECT 1/0")
        except BaseException:
            await tr.rollback()
            raise
        if ending == "commit":
            await tr.commit()
        else:
            await tr.rollback()

        # The same connection, as the next request on it would find it.
        assert await identity(conn) == ANON_IDENTITY
        assert await conn.fetchval("SHOW statement_timeout") == timeout_before
        assert await visible_rows(conn) == NOTHING
    name = await module_db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", alice)
    assert name == (new_name if ending == "commit" else name_before)


async def test_pooled_connection_comes_back_anon(world: World) -> None:
    pool = await asyncpg.create_pool(world.dsn, min_size=1, max_size=1, server_settings=SERVER_SETTINGS)
    try:
        async with pool.acquire() as conn:
            first_pid = conn.get_server_pid()
            async with conn.transaction():
                await enter_scope(conn, Caller(role="service_role", sub=world.alice))
                assert await visible_rows(conn) == {t: 2 for t in SIX_TABLES}
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == first_pid  # really the same connection
            assert await identity(conn) == ANON_IDENTITY
            assert await visible_rows(conn) == NOTHING
    finally:
        await pool.close()


async def test_connection_released_mid_transaction_is_rolled_back_and_anon(world: World, module_db: MigratedDB) -> None:
    """A request whose client went away before commit: the pool's reset
    rolls the open transaction back, identity included."""
    alice = uuid.UUID(world.alice)
    name_before = await module_db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", alice)
    pool = await asyncpg.create_pool(world.dsn, min_size=1, max_size=1, server_settings=SERVER_SETTINGS)
    try:
        conn = await pool.acquire()
        first_pid = conn.get_server_pid()
        await conn.execute("BEGIN")  # unmanaged, as if the handler died mid-way
        await enter_scope(conn, Caller(role="authenticated", sub=world.alice))
        assert await conn.execute("UPDATE user_profiles SET name = 'Lost' WHERE user_id = $1", alice) == "UPDATE 1"
        await pool.release(conn)
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == first_pid
            assert await identity(conn) == ANON_IDENTITY
            assert await visible_rows(conn) == NOTHING
    finally:
        await pool.close()
    assert await module_db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", alice) == name_before


async def test_reset_role_returns_to_anon_not_the_login_superuser(world: World) -> None:
    async with server_connection(world.dsn) as conn:
        for role in ("authenticated", "service_role", "centrid_admin"):
            await conn.execute(f"SET ROLE {role}")
            assert await conn.fetchval("SELECT current_user") == role
            await conn.execute("RESET ROLE")
            assert await conn.fetchval("SELECT current_user") == "anon"
            assert await visible_rows(conn) == NOTHING
        # Inside a transaction too.
        async with conn.transaction():
            await enter_scope(conn, Caller(role="service_role"))
            await conn.execute("RESET ROLE")
            assert await conn.fetchval("SELECT current_user") == "anon"


async def test_pool_reset_after_a_scoped_transaction_is_anon(world: World) -> None:
    """asyncpg's reset (`RESET ALL` and friends) keeps the session default."""
    async with server_connection(world.dsn) as conn:
        async with conn.transaction():
            await enter_scope(conn, Caller(role="service_role", sub=world.alice))
        await conn.reset()
        await conn.execute("RESET ALL")
        assert await identity(conn) == ANON_IDENTITY
        assert await visible_rows(conn) == NOTHING


async def test_server_pool_starts_anon_and_undoes_a_session_level_role(world: World) -> None:
    """The server's own pool (centrid.db.pool): connections start as
    anon, and its reset (RESET ALL; RESET ROLE) returns even a session-level
    SET ROLE to anon before the next request gets the connection."""
    from dataclasses import replace

    from piccolo.engine.postgres import PostgresEngine

    from centrid.config import Settings
    from centrid.db.pool import close_pool, open_pool

    engine = PostgresEngine(config={"dsn": world.dsn}, extensions=())
    await open_pool(engine, replace(Settings.from_env(), pool_min_size=1, pool_max_size=1))
    try:
        pool = engine.pool
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            assert await identity(conn) == ANON_IDENTITY
            assert await visible_rows(conn) == NOTHING
            async with conn.transaction():
                await enter_scope(conn, Caller(role="authenticated", sub=world.alice))
                assert await visible_rows(conn) == {t: 1 for t in SIX_TABLES}
            await conn.execute("SET ROLE service_role")  # a session-level slip
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert await identity(conn) == ANON_IDENTITY
            assert await visible_rows(conn) == NOTHING
    finally:
        await close_pool(engine)


async def test_hazard_pool_reset_does_not_undo_a_session_level_set_role(world: World) -> None:
    """Why scoping must only ever use SET LOCAL / set_config(..., true), and
    why the server's pool adds RESET ROLE: `role` is exempt from RESET ALL,
    so asyncpg's default reset leaves a session-level SET ROLE in place for
    the next request on the connection."""
    async with server_connection(world.dsn) as conn:
        await conn.execute("SET ROLE service_role")
        await conn.reset()  # exactly what Pool.release runs
        assert await conn.fetchval("SELECT current_user") == "service_role"
        assert await visible_rows(conn) == {t: 2 for t in SIX_TABLES}
        await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT current_user") == "anon"


async def test_hazard_discard_all_and_set_role_none_fall_back_to_the_login_role(world: World) -> None:
    """The `anon` default is a startup setting of the session, not a
    property of the login role: SET ROLE NONE, or DISCARD ALL (PgBouncer's
    default server_reset_query in session mode) on older minor releases,
    returns the connection to the login role itself, which for the
    embedded/test cluster is the superuser that sees every row."""
    async with server_connection(world.dsn) as conn:
        login = await conn.fetchval("SELECT session_user")
        await conn.execute("SET ROLE NONE")
        assert await conn.fetchval("SELECT current_user") == login
        await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT current_user") == "anon"
    async with server_connection(world.dsn) as conn:
        login = await conn.fetchval("SELECT session_user")
        await conn.execute("DISCARD ALL")
        # (Only new statement texts below: DISCARD ALL also dropped the
        # statements asyncpg had prepared.)
        rows = await conn.fetch("SELECT current_user::text, session_user::text")
        current, session = rows[0]
        assert session == login
        # Current releases (18.6 and 15.20 here) reset ROLE to the session's
        # startup value, anon; older minor releases (16.2, the embedded
        # server before) fell back to the login role itself, the superuser.
        assert current in ("anon", login)
        if current == login:
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True
