"""The request scope's limits: statement timeout and pool acquire timeout -> 503."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from centrid.api.app import create_app
from tests.conftest import MigratedDB
from tests.support import bearer, create_user


async def _client(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
            yield c


@pytest.fixture
async def tight_client(app_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """One connection, a short acquire timeout and a short statement timeout."""
    async for c in _client(
        replace(app_settings, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.3, statement_timeout_ms=400)
    ):
        yield c


async def _locked_document(db: MigratedDB) -> tuple[str, str, Any]:
    alice = await create_user(db.owner)
    doc_id = str(
        await db.owner.fetchval(
            "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'a', 't', 1) RETURNING id",
            alice,
        )
    )
    tr = db.owner.transaction()
    await tr.start()
    await db.owner.execute("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE", doc_id)
    return alice, doc_id, tr


async def test_statement_timeout_is_503_and_changes_nothing(db: MigratedDB, tight_client: httpx.AsyncClient) -> None:
    alice, doc_id, lock = await _locked_document(db)
    try:
        r = await tight_client.patch(f"/api/documents/{doc_id}", json={"filename": "b"}, headers=bearer(alice))
    finally:
        await lock.rollback()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "timeout"
    assert await db.owner.fetchval("SELECT filename FROM documents WHERE id = $1", doc_id) == "a"
    # The connection went back to the pool healthy.
    assert (await tight_client.get("/api/documents", headers=bearer(alice))).status_code == 200


@pytest.fixture
async def one_connection_client(app_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """One connection, a short acquire timeout, a long statement timeout."""
    async for c in _client(
        replace(app_settings, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.3, statement_timeout_ms=20000)
    ):
        yield c


async def test_pool_exhaustion_is_503_not_a_hang(db: MigratedDB, one_connection_client: httpx.AsyncClient) -> None:
    tight_client = one_connection_client
    alice, doc_id, lock = await _locked_document(db)
    try:
        blocked = asyncio.ensure_future(
            tight_client.patch(f"/api/documents/{doc_id}", json={"filename": "b"}, headers=bearer(alice))
        )
        # Wait until the blocked request holds the only connection (it waits on our row lock).
        for _ in range(200):
            waiting = await db.owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'centrid' AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        second = await tight_client.get("/api/documents", headers=bearer(alice))
        assert second.status_code == 503
        assert second.json()["error"]["code"] == "database_unavailable"
    finally:
        await lock.rollback()
    # Released by the lock's end, the first request completes normally.
    first = await blocked
    assert first.status_code == 200, first.text
    assert first.json()["filename"] == "b"
