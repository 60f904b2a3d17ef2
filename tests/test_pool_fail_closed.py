"""Fail closed, with the request pool's own connections.

tests/test_fail_closed.py proves the mechanism (a session that starts as
`anon`, identity set LOCAL) on connections it builds by hand. Here the
connections come from the pool exactly as the server opens it
(`centrid.db.pool.open_pool` with the test settings, whose request login
is `centrid_authenticator`), and after real requests through the app: outside
a request scope they see no user rows, cannot become the owner, and a
request leaves nothing of its identity behind on its connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from piccolo.engine.postgres import PostgresEngine

from centrid.db.pool import close_pool, open_pool
from tests.api_support import DOC, app_client, service
from tests.conftest import MigratedDB
from tests.rls_support import World, identity, seed_world, visible_rows
from tests.support import SIX_TABLES, bearer

NOTHING = {t: 0 for t in SIX_TABLES}
ANON = {"role": "anon", "login": "centrid_authenticator", "claims": "", "sub": "", "claim_role": "", "uid": None}



async def owner_login(db: MigratedDB) -> str:
    return str(await db.owner.fetchval("SELECT current_user"))


@pytest.fixture
async def world(db: MigratedDB) -> World:
    return await seed_world(db.owner, db.dsn)


@pytest.fixture
async def server_pool(db: MigratedDB, app_settings: Any) -> AsyncIterator[asyncpg.Pool]:
    """The request pool as the server opens it, on an engine of its own."""
    engine = PostgresEngine(config={"dsn": db.dsn}, extensions=())
    await open_pool(engine, replace(app_settings, pool_min_size=1, pool_max_size=2))
    try:
        assert engine.pool is not None
        yield engine.pool
    finally:
        await close_pool(engine)


async def test_the_rows_exist(world: World, db: MigratedDB) -> None:
    """The control: every table holds rows (two users' worth) for the tests below to miss."""
    assert await visible_rows(db.owner) == {t: 2 for t in SIX_TABLES}


async def test_an_unscoped_pool_connection_is_anon_and_sees_no_user_rows(world: World, server_pool: asyncpg.Pool) -> None:
    async with server_pool.acquire() as conn:
        assert await identity(conn, login=True) == ANON
        assert await visible_rows(conn) == NOTHING
        # A transaction nobody scoped (a forgotten one, a background task).
        async with conn.transaction():
            assert await visible_rows(conn) == NOTHING
        login = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = session_user"
        )
        assert dict(login) == {"rolsuper": False, "rolbypassrls": False, "rolinherit": False}
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = session_user"
        )
        assert owned == 0


async def test_a_pool_connection_cannot_become_the_owner(
    world: World, db: MigratedDB, server_pool: asyncpg.Pool
) -> None:
    owner = await owner_login(db)
    async with server_pool.acquire() as conn:
        for statement in (f'SET ROLE "{owner}"', f'SET SESSION AUTHORIZATION "{owner}"', "SET ROLE postgres"):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(statement)
        async with conn.transaction():
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f'SET LOCAL ROLE "{owner}"')
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute(f"SELECT set_config('role', '{owner}', false)")
        assert await identity(conn, login=True) == ANON
        # Dropping the role altogether leaves the login itself, which reads nothing.
        await conn.execute("SET ROLE NONE")
        assert await conn.fetchval("SELECT current_user") == "centrid_authenticator"
        for table in SIX_TABLES:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetchval(f"SELECT count(*) FROM {table}")
        await conn.execute("RESET ROLE")
        assert await identity(conn, login=True) == ANON


async def test_after_requests_the_pools_connection_is_anon_again(
    world: World, db: MigratedDB, app_settings: Any
) -> None:
    """One connection in the pool, so every request below runs on it; between
    them, taken from the same pool outside any request, it is anon with no
    claims - after commits, rollbacks, an error and every role."""
    from piccolo_conf import DB

    alice, bob = world.alice, world.bob
    requests: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("GET", "/api/documents", bearer(alice), None, 200),  # committed, read only
        ("POST", "/api/documents", bearer(alice), DOC, 201),  # committed write
        ("PATCH", "/api/profile", bearer(alice), {"plan_type": "pro"}, 403),  # refused by a grant: rolled back
        ("POST", "/api/documents", bearer(alice), {**DOC, "file_size": 0}, 422),  # rolled back
        ("GET", f"/api/documents/{uuid.uuid4()}", bearer(bob), None, 404),  # rolled back
        ("GET", f"/api/profiles/{alice}", service(), None, 200),  # service_role (BYPASSRLS)
        ("GET", "/hello", {}, None, 200),  # anon
    ]
    async with app_client(replace(app_settings, pool_min_size=1, pool_max_size=1)) as (_, client):
        assert DB.pool is not None
        async with DB.pool.acquire() as conn:
            pid = conn.get_server_pid()
            timeout = await conn.fetchval("SHOW statement_timeout")
        for method, path, headers, body, status in requests:
            r = await client.request(method, path, headers=headers, json=body)
            assert r.status_code == status, (method, path, r.text)
            async with DB.pool.acquire() as conn:
                assert conn.get_server_pid() == pid, "not the connection the request used"
                assert await identity(conn, login=True) == ANON, (method, path)
                assert await conn.fetchval("SHOW statement_timeout") == timeout
                assert await visible_rows(conn) == NOTHING, (method, path)
        # The control: the committed write is there, so the pool did serve the requests.
        assert await db.owner.fetchval("SELECT count(*) FROM documents WHERE user_id = $1", uuid.UUID(alice)) == 2
        r = await client.get("/api/documents", headers=bearer(alice))
        assert len(r.json()["items"]) == 2


async def test_the_app_pool_logs_in_as_the_authenticator_with_anon_as_its_start(
    world: World, db: MigratedDB, client: httpx.AsyncClient
) -> None:
    """The `client` fixture's pool (the app's own lifespan) uses the same login."""
    from piccolo_conf import DB

    assert (await client.get("/hello", headers=bearer(world.alice))).status_code == 200
    assert DB.pool is not None
    async with DB.pool.acquire() as conn:
        assert await identity(conn, login=True) == ANON
        assert await visible_rows(conn) == NOTHING
