"""The request pool's login cannot leave its scope.

Helper-found hole: with the owner (a superuser) as the pool's login, SQL run
inside an `authenticated` scope could `SET LOCAL ROLE postgres`. Requests now
log in as centrid_authenticator (NOINHERIT, owns nothing, bypasses nothing).
"""

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from centrid.request.claims import Caller, enter_scope
from tests.conftest import MigratedDB, authenticator_dsn
from tests.support import bearer, create_user


@pytest.fixture
async def request_conn(db: MigratedDB) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(authenticator_dsn(db.dsn), server_settings={"role": "anon"})
    try:
        yield conn
    finally:
        await conn.close()


async def test_scoped_request_cannot_become_the_owner(db: MigratedDB, request_conn: asyncpg.Connection) -> None:
    alice = await create_user(db.owner)
    async with request_conn.transaction():
        await enter_scope(request_conn, Caller(role="authenticated", sub=alice))
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await request_conn.execute("SET LOCAL ROLE postgres")


async def test_session_authorization_cannot_be_taken(request_conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        await request_conn.execute("SET SESSION AUTHORIZATION postgres")


async def test_dropping_the_role_leaves_no_privileges(db: MigratedDB, request_conn: asyncpg.Connection) -> None:
    alice = await create_user(db.owner)
    await db.owner.execute(
        "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'a', 't', 1)", alice
    )
    await request_conn.execute("SET ROLE NONE")
    assert await request_conn.fetchval("SELECT current_user") == "centrid_authenticator"
    for table in ("documents", "user_profiles", "usage_events", "piccolo_user", "migration"):
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await request_conn.fetch(f"SELECT * FROM {table}")
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        await request_conn.fetch("SELECT * FROM auth.users")


async def test_the_app_pool_logs_in_as_the_authenticator(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    response = await client.get("/api/documents", headers=bearer(alice))
    assert response.status_code == 200
    logins = await db.owner.fetch(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'centrid' AND datname = current_database()"
    )
    assert [r["usename"] for r in logins] == ["centrid_authenticator"]


async def test_the_login_starts_as_anon_without_any_startup_parameter(db: MigratedDB) -> None:
    """A pooler may drop the pool's `role` startup parameter; the login's own
    role-level default still makes every session start as anon."""
    conn = await asyncpg.connect(authenticator_dsn(db.dsn))
    try:
        assert await conn.fetchval("SELECT current_user") == "anon"
        assert await conn.fetchval("SELECT count(*) FROM documents") == 0
    finally:
        await conn.close()
