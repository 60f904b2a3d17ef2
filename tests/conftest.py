"""Session: one PostgreSQL and one migrated template. Test: a fresh clone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from centrid.db.engine import with_database
from tests.cluster import Cluster, start_cluster
from tests.support import run_piccolo

TEMPLATE = f"centrid_template_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    import os

    from centrid.config import settings

    c = start_cluster()
    # Anything that imports piccolo_conf from here on targets the test
    # cluster, never the developer's .centrid/ database.
    os.environ["DATABASE_URL"] = with_database(c.dsn, TEMPLATE)
    settings.cache_clear()
    try:
        yield c
    finally:
        c.stop()


async def create_database(cluster: Cluster, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        if template:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(cluster.dsn, name)


async def drop_database(cluster: Cluster, name: str) -> None:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_dsn(cluster: Cluster) -> AsyncIterator[str]:
    """Migrated once per session through the real CLI."""
    dsn = await create_database(cluster, TEMPLATE)
    result = run_piccolo(["migrations", "forwards", "all"], dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    # The request login has no password by design; on servers that ask for
    # one (testcontainers), give it a test-only password.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"ALTER ROLE centrid_authenticator PASSWORD '{AUTHENTICATOR_TEST_PASSWORD}'")
    finally:
        await conn.close()
    yield dsn
    await drop_database(cluster, TEMPLATE)


@pytest.fixture
async def empty_dsn(cluster: Cluster) -> AsyncIterator[str]:
    """A database with nothing in it, for migration tests."""
    name = f"centrid_empty_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(cluster, name)
    yield dsn
    await drop_database(cluster, name)


@dataclass
class MigratedDB:
    dsn: str
    owner: asyncpg.Connection  # the migrating (owner) role: sees and may do everything


@pytest.fixture
async def db(cluster: Cluster, template_dsn: str) -> AsyncIterator[MigratedDB]:
    """A fresh, fully migrated database for one test; the Piccolo engine
    points at it for the test's duration."""
    import piccolo_conf
    from centrid.db.engine import retarget

    name = f"centrid_test_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(cluster, name, template=TEMPLATE)
    engine = piccolo_conf.DB
    if engine.pool is not None:
        await engine.close_connection_pool()
    retarget(engine, dsn)
    owner = await asyncpg.connect(dsn)
    try:
        yield MigratedDB(dsn=dsn, owner=owner)
    finally:
        await owner.close()
        if engine.pool is not None:
            await engine.close_connection_pool()
        await drop_database(cluster, name)


TEST_JWT_SECRET = "centrid-test-secret-not-for-production-use-0123456789"
AUTHENTICATOR_TEST_PASSWORD = "centrid-authenticator-test-only"


def authenticator_dsn(dsn: str) -> str:
    from centrid.db.engine import AUTHENTICATOR_ROLE, with_user

    return with_user(dsn, AUTHENTICATOR_ROLE, AUTHENTICATOR_TEST_PASSWORD)


@pytest.fixture
def app_settings(db: MigratedDB) -> Any:
    """Settings for an in-process app over the test database."""
    from dataclasses import replace

    from centrid.config import settings

    return replace(
        settings(),
        database_url=db.dsn,
        request_database_url=authenticator_dsn(db.dsn),
        auto_migrate=False,
        jwt_secret=TEST_JWT_SECRET,
        pool_min_size=1,
        pool_max_size=4,
        cors_origins=("https://app.example.test",),
    )


@pytest.fixture
async def client(app_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the ASGI app in process, lifespan included
    (the pool opens and closes as in production)."""
    from centrid.api.app import create_app

    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
