"""Isolation under concurrency on a small pool, and a client that goes away
mid-request."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api_support import DOC, CallerOps, RawRequest, app_client, assert_only_callers_rows, centrid_backends, seed_callers, service
from tests.conftest import MigratedDB
from tests.support import bearer, create_user, wait_for

POOL_MAX = 2


@pytest.fixture
async def small_pool(app_settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    cfg = dataclasses.replace(app_settings, pool_min_size=1, pool_max_size=POOL_MAX)
    async with app_client(cfg) as pair:
        yield pair


class Sampler:
    """Samples the app's connections in pg_stat_activity while load runs."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.max_seen = 0
        self.samples = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            rows = await centrid_backends(self.conn)
            self.max_seen = max(self.max_seen, len(rows))
            self.samples += 1
            await asyncio.sleep(0)  # yield to the load between samples (not synchronization)

    def __enter__(self) -> Sampler:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


async def test_every_response_holds_only_the_callers_rows(db: MigratedDB, small_pool: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = small_pool
    users, docs = await seed_callers(client, db.owner)
    owner_of = {d: u for u, ds in docs.items() for d in ds}
    rng = random.Random(1234)
    created: list[tuple[str, str]] = []

    check_items = assert_only_callers_rows

    def make_op(kind: int) -> Callable[[], Awaitable[None]]:
        user = rng.choice(users)
        other = rng.choice([u for u in users if u != user])

        async def list_docs() -> None:
            r = await client.get("/api/documents", headers=bearer(user))
            assert r.status_code == 200, r.text
            check_items(user, r.json()["items"], "GET /api/documents")
            assert set(docs[user]) <= {d["id"] for d in r.json()["items"]}

        async def post_doc() -> None:
            r = await client.post("/api/documents", json={**DOC, "filename": "concurrent.txt"}, headers=bearer(user))
            assert r.status_code == 201, r.text
            assert r.json()["user_id"] == user
            created.append((r.json()["id"], user))

        async def patch_own() -> None:
            doc = rng.choice(docs[user])
            r = await client.patch(f"/api/documents/{doc}", json={"processing_status": "processing"}, headers=bearer(user))
            assert r.status_code == 200, r.text
            assert r.json()["user_id"] == user

        async def patch_others() -> None:
            doc = rng.choice(docs[other])
            r = await client.patch(f"/api/documents/{doc}", json={"filename": "stolen"}, headers=bearer(user))
            assert r.status_code == 404, r.text

        async def anon_lists() -> None:
            for path in ("/api/documents", "/api/agent-requests"):
                r = await client.get(path)
                assert r.status_code == 200 and r.json()["items"] == [], r.text

        async def service_patch() -> None:
            r = await client.patch(f"/api/profiles/{user}", json={"usage_count": rng.randint(0, 100)}, headers=service())
            assert r.status_code == 200, r.text
            assert r.json()["user_id"] == user

        async def list_requests() -> None:
            r = await client.get("/api/agent-requests", headers=bearer(user))
            assert r.status_code == 200, r.text
            check_items(user, r.json()["items"], "GET /api/agent-requests")
            assert len(r.json()["items"]) == 1

        caller = CallerOps(client, users, docs, user, other, rng)
        ops = [list_docs, caller.get_own, caller.get_others, post_doc, patch_own, patch_others, anon_lists, caller.anon_write,
               caller.service_list, service_patch, caller.profile, caller.hello, caller.search, list_requests]
        return ops[kind % len(ops)]

    operations = [make_op(i) for i in range(420)]
    rng.shuffle(operations)
    sampler = Sampler(db.owner)
    started = time.monotonic()
    with sampler:
        results = await asyncio.gather(*(op() for op in operations), return_exceptions=True)
        await sampler.stop()
    elapsed = time.monotonic() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {len(results)} failed; first: {failures[0]!r}"
    assert sampler.samples > 3, "the sampler never ran alongside the load"
    assert 1 <= sampler.max_seen <= POOL_MAX, f"the pool opened {sampler.max_seen} connections (max {POOL_MAX})"
    assert elapsed < 60

    backends = await centrid_backends(db.owner)
    assert len(backends) <= POOL_MAX
    assert [b for b in backends if b["state"] != "idle"] == [], backends
    # Every document written under load belongs to whoever wrote it.
    rows = await db.owner.fetch("SELECT id::text, user_id::text FROM documents WHERE filename = 'concurrent.txt'")
    assert sorted((r["id"], r["user_id"]) for r in rows) == sorted(created)
    assert len(created) == 30
    # And nothing else moved.
    for doc, user in owner_of.items():
        assert str(await db.owner.fetchval("SELECT user_id FROM documents WHERE id = $1", uuid.UUID(doc))) == user
    assert await db.owner.fetchval("SELECT count(*) FROM documents WHERE filename = 'stolen'") == 0


async def test_client_disconnect_mid_request_rolls_back_and_releases(
    db: MigratedDB, small_pool: tuple[Any, httpx.AsyncClient]
) -> None:
    app, client = small_pool
    alice = await create_user(db.owner)
    # Hold a lock so the request's INSERT blocks inside the database.
    blocker = await asyncpg.connect(db.dsn)
    blocker_tx = blocker.transaction()
    await blocker_tx.start()
    await blocker.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")

    body = b'{"filename": "gone.txt", "file_type": "text/plain", "file_size": 1}'
    raw = RawRequest("POST", "/api/documents", body, bearer(alice)["Authorization"].encode())
    disconnect, sent = raw.disconnect, raw.sent
    task = raw.start(app)
    try:
        async def blocked() -> bool:
            return any(b["wait_event_type"] == "Lock" for b in await centrid_backends(db.owner))

        await wait_for(blocked, "the request's INSERT to block on the lock", timeout=10.0)
        disconnect.set()
        await asyncio.wait_for(task, timeout=10)
        assert not any(m["type"] == "http.response.start" and m["status"] < 400 for m in sent), sent

        async def settled() -> bool:
            backends = await centrid_backends(db.owner)
            return all(b["state"] == "idle" and b["wait_event_type"] != "Lock" for b in backends)

        # Rolled back and released: no app connection is left in a
        # transaction or still waiting on the lock.
        await wait_for(settled, "the app's connections to be idle after the disconnect", timeout=5)
    finally:
        await blocker_tx.rollback()
        await blocker.close()
        if not task.done():
            task.cancel()
    # Nothing was written, even after the lock went away.
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 0
    backends = await centrid_backends(db.owner)
    assert [b for b in backends if b["state"] == "idle in transaction"] == []
    assert len(backends) <= POOL_MAX
    # The pool still serves requests (no connection was lost for good).
    for _ in range(POOL_MAX + 1):
        r = await client.post("/api/documents", json=DOC, headers=bearer(alice))
        assert r.status_code == 201, r.text
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == POOL_MAX + 1


async def test_requests_beyond_the_pool_wait_instead_of_failing(
    db: MigratedDB, small_pool: tuple[Any, httpx.AsyncClient]
) -> None:
    """With both connections busy (blocked on a lock), further requests queue
    for a connection; when the lock goes, all complete."""
    _, client = small_pool
    alice = await create_user(db.owner)
    blocker = await asyncpg.connect(db.dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
    try:
        posts = [asyncio.ensure_future(client.post("/api/documents", json=DOC, headers=bearer(alice))) for _ in range(6)]

        async def both_blocked() -> bool:
            waiting: int = sum(b["wait_event_type"] == "Lock" for b in await centrid_backends(db.owner))
            return waiting == POOL_MAX

        await wait_for(both_blocked, "both pool connections to block", timeout=10.0)
        assert len(await centrid_backends(db.owner)) == POOL_MAX
        assert not any(p.done() for p in posts)
    finally:
        await tx.rollback()
        await blocker.close()
    responses = await asyncio.wait_for(asyncio.gather(*posts), timeout=10)
    assert [r.status_code for r in responses] == [201] * 6
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 6
