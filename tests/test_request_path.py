"""The fast request path (issue 8) keeps every guarantee of the slow one:
the token cache, BEGIN + claims in one round trip, READ ONLY reads, COMMIT
with the pool's reset folded in, the fair admission queue, and the SQL
built once per query shape."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from piccolo.columns.combination import WhereRaw
from piccolo.engine.postgres import PostgresTransaction

from centrid.api import models
from centrid.api.app import create_app
from centrid.request.admission import Admission, Overloaded
from centrid.request.claims import Caller, begin_scope, sql_literal
from centrid.db.pool import COMMIT_AND_RESET_SQL, close_pool, mark_reset, open_pool
from centrid.request.tokens import InvalidToken, TokenCache, mint_token
from centrid.schema.tables import Document
from tests.conftest import TEST_JWT_SECRET, MigratedDB
from tests.support import bearer, create_user

OTHER_SECRET = "another-secret-that-signed-nothing-here-0123456789"


# --------------------------------------------------------------------------
# Token cache


def _header(token: str) -> str:
    return f"Bearer {token}"


def test_cached_token_is_verified_once_and_gives_the_same_caller() -> None:
    cache = TokenCache(10)
    header = _header(mint_token(str(uuid.uuid4()), "authenticated", TEST_JWT_SECRET))
    first = cache.caller(header, TEST_JWT_SECRET)
    assert len(cache) == 1
    assert cache.caller(header, TEST_JWT_SECRET) is first


def test_cached_token_is_rejected_once_expired() -> None:
    cache = TokenCache(10)
    header = _header(mint_token(str(uuid.uuid4()), "authenticated", TEST_JWT_SECRET, ttl_seconds=1))
    cache.caller(header, TEST_JWT_SECRET)
    assert len(cache) == 1
    time.sleep(2.1)  # past exp (whole seconds), with the entry still in the cache
    with pytest.raises(InvalidToken, match="expired"):
        cache.caller(header, TEST_JWT_SECRET)
    assert len(cache) == 0


def test_cached_token_never_serves_another_secret() -> None:
    cache = TokenCache(10)
    header = _header(mint_token(str(uuid.uuid4()), "authenticated", TEST_JWT_SECRET))
    cache.caller(header, TEST_JWT_SECRET)
    with pytest.raises(InvalidToken, match="invalid"):
        cache.caller(header, OTHER_SECRET)  # e.g. after the secret was rotated
    forged = _header(mint_token(str(uuid.uuid4()), "authenticated", OTHER_SECRET))
    for _ in range(2):
        with pytest.raises(InvalidToken, match="invalid"):
            cache.caller(forged, TEST_JWT_SECRET)
    assert len(cache) == 1  # failures are never kept


def test_token_cache_is_bounded_oldest_first() -> None:
    cache = TokenCache(3)
    headers = [_header(mint_token(str(uuid.uuid4()), "authenticated", TEST_JWT_SECRET)) for _ in range(5)]
    callers = [cache.caller(h, TEST_JWT_SECRET) for h in headers]
    assert len(cache) == 3
    assert cache.caller(headers[4], TEST_JWT_SECRET) is callers[4]  # kept
    again = cache.caller(headers[0], TEST_JWT_SECRET)  # evicted: verified anew, same identity
    assert again is not callers[0] and again == callers[0]
    assert len(cache) == 3


def test_token_cache_off_when_size_zero() -> None:
    cache = TokenCache(0)
    header = _header(mint_token(str(uuid.uuid4()), "authenticated", TEST_JWT_SECRET))
    assert cache.caller(header, TEST_JWT_SECRET).role == "authenticated"
    assert len(cache) == 0


async def test_expired_token_is_401_through_the_app_even_after_a_cached_success(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    alice = await create_user(db.owner)
    headers = bearer(alice, ttl=1)
    assert (await client.get("/api/documents", headers=headers)).status_code == 200
    await asyncio.sleep(2.1)
    r = await client.get("/api/documents", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["message"] == "token has expired"
    forged = bearer(alice, secret=OTHER_SECRET)
    assert (await client.get("/api/documents", headers=forged)).status_code == 401


# --------------------------------------------------------------------------
# BEGIN + claims in one round trip; READ ONLY reads; COMMIT + reset


def test_sql_literal_quotes_like_quote_literal() -> None:
    assert sql_literal("plain") == "E'plain'"
    assert sql_literal("it's \\ here") == "E'it''s \\\\ here'"
    with pytest.raises(ValueError):
        sql_literal("nul\x00")


async def test_begin_scope_sets_claims_and_role_and_survives_quoting(db: MigratedDB) -> None:
    alice = await create_user(db.owner)
    claims = {"role": "authenticated", "sub": alice, "note": "it's a \\ 'quoted' \"value\"; DROP TABLE x; --"}
    conn = await asyncpg.connect(db.dsn)
    try:
        await begin_scope(conn, Caller(role="authenticated", sub=alice, claims=claims), read_only=False,
                          statement_timeout_ms=1234)
        assert await conn.fetchval("SELECT current_user") == "authenticated"
        assert str(await conn.fetchval("SELECT auth.uid()")) == alice
        assert json.loads(await conn.fetchval("SELECT current_setting('request.jwt.claims')")) == claims
        assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
        await conn.execute("ROLLBACK")
        assert await conn.fetchval("SELECT current_setting('request.jwt.claims', true)") in ("", None)
    finally:
        await conn.close()


async def test_begin_scope_refuses_unknown_roles(db: MigratedDB) -> None:
    conn = await asyncpg.connect(db.dsn)
    try:
        with pytest.raises(ValueError):
            await begin_scope(conn, Caller(role="postgres"), read_only=True)  # type: ignore[arg-type]
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


async def test_read_only_scope_reads_and_refuses_writes(db: MigratedDB) -> None:
    alice = await create_user(db.owner)
    await db.owner.execute(
        "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'a', 't', 1)", alice
    )
    conn = await asyncpg.connect(db.dsn)
    try:
        await begin_scope(conn, Caller(role="authenticated", sub=alice), read_only=True)
        assert await conn.fetchval("SELECT count(*) FROM documents") == 1
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await conn.execute("INSERT INTO documents (filename, file_type, file_size) VALUES ('b', 't', 1)")
        await conn.execute("ROLLBACK")
    finally:
        await conn.close()
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 1


async def test_gets_run_read_only_and_writes_still_work(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """Through the app: reads answer, writes commit (they are not READ ONLY)."""
    alice = await create_user(db.owner)
    created = await client.post("/api/documents", headers=bearer(alice),
                                json={"filename": "n.txt", "file_type": "text/plain", "file_size": 3})
    assert created.status_code == 201, created.text
    listed = await client.get("/api/documents", headers=bearer(alice))
    assert [d["id"] for d in listed.json()["items"]] == [created.json()["id"]]
    got = await client.get(f"/api/documents/{created.json()['id']}", headers=bearer(alice))
    assert got.json() == created.json()
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 1


async def test_commit_with_reset_reports_a_failed_transaction(db: MigratedDB) -> None:
    """COMMIT_AND_RESET_SQL never reads as success for an aborted transaction."""
    conn = await asyncpg.connect(db.dsn)
    try:
        login_role = await conn.fetchval("SELECT current_user")
        await begin_scope(conn, Caller(role="service_role"), read_only=False)
        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            await conn.execute("SELECT 1/0")
        with pytest.raises(asyncpg.exceptions.InFailedSQLTransactionError):
            await conn.execute(COMMIT_AND_RESET_SQL)
        await conn.execute("ROLLBACK")
        await begin_scope(conn, Caller(role="service_role"), read_only=False)
        assert await conn.execute(COMMIT_AND_RESET_SQL) == "COMMIT"
        assert await conn.fetchval("SELECT current_user") == login_role  # session default again
    finally:
        await conn.close()


async def test_pool_skips_its_reset_only_once_after_a_committed_reset(db: MigratedDB, app_settings: Any) -> None:
    from piccolo.engine.postgres import PostgresEngine

    engine = PostgresEngine(config={"dsn": db.dsn}, extensions=())
    await open_pool(engine, replace(app_settings, request_database_url=db.dsn, pool_min_size=1, pool_max_size=1))
    try:
        assert engine.pool is not None
        async with engine.pool.acquire() as conn:
            await conn.execute("SET ROLE service_role")  # session level, then marked as reset
            mark_reset(conn)
        async with engine.pool.acquire() as conn:
            # The mark was honoured once (this is why only the request path may set it)...
            assert await conn.fetchval("SELECT current_user") == "service_role"
        async with engine.pool.acquire() as conn:
            # ...and the next release reset it as always.
            assert await conn.fetchval("SELECT current_user") == "anon"
    finally:
        await close_pool(engine)


# --------------------------------------------------------------------------
# Admission: fair queue, shedding only when the queue cannot drain in time


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("centrid.request.admission.time.perf_counter", fake)
    return fake


async def test_admission_serves_queued_requests_in_arrival_order(clock: FakeClock) -> None:
    gate = Admission(permits=1, patience=5.0)
    await gate.enter()
    order: list[int] = []

    async def request(i: int) -> None:
        await gate.enter()
        order.append(i)
        await asyncio.sleep(0)
        gate.leave()

    tasks = [asyncio.ensure_future(request(i)) for i in range(20)]
    await asyncio.sleep(0)
    assert gate.waiting == 20
    gate.leave()
    await asyncio.gather(*tasks)
    assert order == list(range(20))
    assert gate.in_use == 0 and gate.waiting == 0


async def test_admission_sheds_with_retry_after_only_when_the_queue_cannot_drain(clock: FakeClock) -> None:
    gate = Admission(permits=1, patience=2.0)
    await gate.enter()
    waiters = [asyncio.ensure_future(gate.enter()) for _ in range(Admission.EVIDENCE)]
    await asyncio.sleep(0)
    # Drain at 10 per second (fake clock): 8 hand-overs measured.
    for waiter in waiters:
        clock.now += 0.1
        gate.leave()
        await waiter
    assert gate.drain_rate() is not None
    # Draining ~10 per second with a patience of 2 s: newcomers queue while
    # their estimated wait is within the patience (about 20 of them)...
    queued: list[asyncio.Future[None]] = []
    while gate.estimated_wait() <= gate.patience:
        queued.append(asyncio.ensure_future(gate.enter()))
        await asyncio.sleep(0)
    assert gate.waiting == len(queued) >= 15
    # ...and the next one is shed at once, told when to retry.
    expected = math.ceil(gate.estimated_wait())
    with pytest.raises(Overloaded) as shed:
        await gate.enter()
    assert shed.value.retry_after == expected >= 3
    more: list[asyncio.Future[None]] = []
    # Everyone who queued is served, in order, none shed.
    for _ in queued + more:
        gate.leave()
        await asyncio.sleep(0)
    await asyncio.gather(*queued, *more)
    gate.leave()
    assert gate.in_use == 0 and gate.waiting == 0


async def test_admission_hands_a_permit_on_when_a_waiter_is_cancelled(clock: FakeClock) -> None:
    gate = Admission(permits=1, patience=5.0)
    await gate.enter()
    first = asyncio.ensure_future(gate.enter())
    second = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    gate.leave()
    await second  # the permit went past the cancelled waiter
    gate.leave()
    assert gate.in_use == 0


@pytest.fixture
async def one_connection_client(app_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(replace(app_settings, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.3,
                             statement_timeout_ms=20000))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                     timeout=30) as c:
            yield c


async def test_stalled_queue_answers_503_with_retry_after(db: MigratedDB, one_connection_client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc_id = str(await db.owner.fetchval(
        "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'a', 't', 1) RETURNING id", alice))
    lock = db.owner.transaction()
    await lock.start()
    await db.owner.execute("SELECT 1 FROM documents WHERE id = $1 FOR UPDATE", doc_id)
    try:
        blocked = asyncio.ensure_future(
            one_connection_client.patch(f"/api/documents/{doc_id}", json={"filename": "b"}, headers=bearer(alice)))
        for _ in range(300):
            if await db.owner.fetchval("SELECT count(*) FROM pg_stat_activity "
                                       "WHERE application_name = 'centrid' AND wait_event_type = 'Lock'"):
                break
            await asyncio.sleep(0.01)
        second = await one_connection_client.get("/api/documents", headers=bearer(alice))
        assert second.status_code == 503
        assert second.json()["error"]["code"] == "database_unavailable"
        assert int(second.headers["retry-after"]) >= 1
    finally:
        await lock.rollback()
    assert (await blocked).status_code == 200
    # Queued requests are served once the connection frees up.
    assert (await one_connection_client.get("/api/documents", headers=bearer(alice))).status_code == 200


# --------------------------------------------------------------------------
# SQL built once per query shape: the same rows as Piccolo's builder


async def test_compiled_queries_return_what_the_builder_returns(db: MigratedDB) -> None:
    from centrid.queries.compiled import dumps, select_sql
    from centrid.queries.rows import (
        insert_one_json,
        insert_rows,
        select_one,
        select_one_json,
        select_page,
        select_page_json,
    )

    alice = await create_user(db.owner)
    await db.owner.execute(
        """INSERT INTO documents (user_id, filename, file_type, file_size, processing_status, content_text, created_at)
           SELECT $1, 'f' || g, 'text/plain', g, (ARRAY['pending','completed'])[1 + g % 2],
                  CASE WHEN g % 3 = 0 THEN 'cats and dogs' ELSE 'quarterly numbers' END,
                  now() - g * interval '1 minute' - (g % 2) * interval '1 microsecond'
           FROM generate_series(1, 25) AS g""",
        alice,
    )
    conn = await asyncpg.connect(db.dsn)
    engine = Document._meta.db
    txn = PostgresTransaction(engine)
    txn.connection = conn
    token = engine.current_transaction.set(txn)
    try:
        await begin_scope(conn, Caller(role="authenticated", sub=alice), read_only=False)
        shapes: list[list[Any]] = [
            [],
            [Document.processing_status == "completed"],
            [WhereRaw("search_vector @@ websearch_to_tsquery('english', {})", "cats")],
            [Document.processing_status == "pending", Document.user_id == uuid.UUID(alice)],
        ]
        for where in shapes:
            cursor = None
            for _ in range(4):  # every page, following the cursors
                old = await select_page(Document, models.Document, where, order_column="created_at", limit=7,
                                        cursor=cursor)
                new = await select_page_json(Document, models.Document, where, order_column="created_at", limit=7,
                                             cursor=cursor)
                assert json.loads(dumps(new)) == {
                    "items": [r.model_dump(mode="json") for r in old.items], "next_cursor": old.next_cursor}
                cursor = old.next_cursor
                if cursor is None:
                    break
        some_id = await conn.fetchval("SELECT id FROM documents LIMIT 1")
        one_old = await select_one(Document, models.Document, Document.id == some_id)
        assert one_old is not None
        one_new = await select_one_json(Document, models.Document, Document.id == some_id)
        assert json.loads(dumps(one_new)) == one_old.model_dump(mode="json")
        assert await select_one_json(Document, models.Document, Document.id == uuid.uuid4()) is None
        row = {"filename": "x.txt", "file_type": "text/plain", "file_size": 5, "content_text": "hi"}
        (made_old,) = await insert_rows(Document, [row], models.Document)
        made_new = await insert_one_json(Document, row, models.Document)
        made_new = json.loads(dumps(made_new))
        assert set(made_new) == set(made_old.model_dump(mode="json"))
        assert made_new["user_id"] == made_old.model_dump(mode="json")["user_id"] == alice
        # One SQL text per shape: the same object comes back from the cache.
        assert select_sql(Document, models.Document, (), limit=1) is select_sql(Document, models.Document, (), limit=1)
        await conn.execute("ROLLBACK")
    finally:
        engine.current_transaction.reset(token)
        await conn.close()


async def test_compiled_queries_refuse_to_run_outside_a_request() -> None:
    from centrid.queries.compiled import OutsideRequestScope
    from centrid.queries.rows import select_one_json

    with pytest.raises(OutsideRequestScope):
        await select_one_json(Document, models.Document, Document.id == uuid.uuid4())
