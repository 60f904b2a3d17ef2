"""Database failures inside a request, in process, on the real database.

A connection lost at COMMIT must never be answered as success; clients that
abort hundreds of requests at random points must leave the pool idle with
nothing idle in transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api_support import DOC, RawRequest, app_client, assert_error, centrid_backends
from tests.conftest import MigratedDB
from tests.support import bearer, create_user, wait_for

POOL_MAX = 3


@pytest.fixture
async def app_pair(app_settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    cfg = dataclasses.replace(app_settings, pool_min_size=1, pool_max_size=POOL_MAX)
    async with app_client(cfg) as pair:
        yield pair


async def test_connection_lost_during_commit_is_503_outcome_unknown(
    db: MigratedDB, app_pair: tuple[Any, httpx.AsyncClient]
) -> None:
    _, client = app_pair
    alice = await create_user(db.owner)
    # A deferred constraint trigger makes COMMIT itself wait, so the test can
    # cut the connection while COMMIT is in flight.
    await db.owner.execute(
        """
        CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS
        $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON documents
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slow_commit();
        """
    )
    request = asyncio.ensure_future(
        client.post("/api/documents", json={**DOC, "filename": "maybe.txt"}, headers=bearer(alice))
    )

    async def in_commit() -> bool:
        rows = await db.owner.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'centrid' "
            "AND datname = current_database() AND wait_event = 'PgSleep'"
        )
        for row in rows:
            await db.owner.execute("SELECT pg_terminate_backend($1)", row["pid"])
        return bool(rows)

    await wait_for(in_commit, "the request's COMMIT to run the deferred trigger", timeout=10.0)
    response = await asyncio.wait_for(request, timeout=20)
    error = assert_error(response, 503, "database_unavailable")
    assert "unknown" in error["message"]
    assert error["details"] == {"outcome": "unknown"}
    # The pool recovers: the next request gets a working connection.
    await db.owner.execute("DROP TRIGGER slow_commit ON documents")
    r = await client.post("/api/documents", json=DOC, headers=bearer(alice))
    assert r.status_code == 201, r.text


async def test_client_aborts_at_random_points_leave_the_pool_idle(
    db: MigratedDB, app_pair: tuple[Any, httpx.AsyncClient]
) -> None:
    """Hundreds of requests, each cut off at a random moment: by the client
    disconnecting (http.disconnect) or by its task being cancelled outright."""
    app, client = app_pair
    alice = await create_user(db.owner)
    token = bearer(alice)["Authorization"].encode()
    rng = random.Random(7)
    acknowledged: list[str] = []

    async def one(i: int) -> None:
        name = f"abort-{i}-{uuid.uuid4().hex[:8]}.txt"
        body = (
            b'{"filename": "' + name.encode() + b'", "file_type": "text/plain", "file_size": 1}'
        )
        method, path = ("POST", "/api/documents") if i % 3 else ("GET", "/api/documents")
        raw = RawRequest(method, path, body, token)
        disconnect, sent = raw.disconnect, raw.sent
        task = raw.start(app)
        await asyncio.sleep(rng.uniform(0, 0.03))
        if rng.random() < 0.5:
            disconnect.set()
            await asyncio.gather(task, return_exceptions=True)
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if method == "POST" and any(m["type"] == "http.response.start" and m["status"] == 201 for m in sent):
            acknowledged.append(name)

    for batch in range(30):
        await asyncio.gather(*(one(batch * 10 + k) for k in range(10)))

    import piccolo_conf

    engine_pool = piccolo_conf.DB.pool
    assert engine_pool is not None

    async def settled() -> bool:
        backends = await centrid_backends(db.owner)
        return engine_pool.get_idle_size() == engine_pool.get_size() and all(
            b["state"] == "idle" for b in backends
        )

    await wait_for(settled, "the pool to be idle after the aborts", timeout=10.0)
    backends = await centrid_backends(db.owner)
    assert [b for b in backends if b["state"] == "idle in transaction"] == []
    assert len(backends) <= POOL_MAX
    stored = {r["filename"] for r in await db.owner.fetch("SELECT filename FROM documents")}
    assert set(acknowledged) <= stored
    # Still serving, with every connection usable.
    for _ in range(POOL_MAX + 1):
        r = await client.post("/api/documents", json=DOC, headers=bearer(alice))
        assert r.status_code == 201, r.text
