"""The request scope's parts on their own, without a database: the commit
policy and the transaction's lifecycle (on a recording fake connection),
the body and response buffering with the disconnect watch, the failure
mapping, the typed request state and the database-down predicates.

The end-to-end proofs are elsewhere (test_commit_policy, test_database_failures,
test_request_path, test_scope_limits); these pin each part where it is written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest
from piccolo.engine.postgres import PostgresEngine
from starlette.types import Message, Receive, Scope, Send

from centrid.db.pool import COMMIT_AND_RESET_SQL
from centrid.errors import database_down, database_refused
from centrid.request.buffering import BodyTooLarge, ClientDisconnected, read_body, run_buffered
from centrid.request.claims import Caller
from centrid.request.failures import app_failure, commit_failure, unavailable
from centrid.request.state import request_headers, request_state
from centrid.request.transaction import (
    CommitOutcomeUnknown,
    CommitRefused,
    RequestTransaction,
    TransactionNotBegun,
    commits,
)

ALICE = Caller(role="authenticated", sub="00000000-0000-0000-0000-00000000000a")


# --- the commit policy and the transaction ---------------------------------------------


def test_the_commit_policy_keeps_only_successful_responses() -> None:
    assert [s for s in (0, 100, 200, 204, 303, 399, 400, 404, 409, 500, 503) if commits(s)] == [100, 200, 204, 303, 399]


class FakeConnection:
    """Records what the transaction sends; fails the statements it is told to."""

    def __init__(self, fail: dict[str, BaseException] | None = None, commit_answer: str = "COMMIT") -> None:
        self.sent: list[str] = []
        self.fail = fail or {}
        self.commit_answer = commit_answer
        self.terminated = False
        self.reset_done = False

    async def execute(self, sql: str, *args: Any) -> str:
        self.sent.append(sql)
        for prefix, exc in self.fail.items():
            if sql.startswith(prefix):
                raise exc
        return self.commit_answer if sql == COMMIT_AND_RESET_SQL else "OK"

    def transaction(self) -> object:
        return object()  # Piccolo keeps it; our hooks never start it

    def terminate(self) -> None:
        self.terminated = True

    def mark_reset(self) -> None:
        self.reset_done = True


@pytest.fixture
def engine() -> PostgresEngine:
    return PostgresEngine(config={})


def _txn(engine: PostgresEngine, conn: FakeConnection, read_only: bool = False) -> RequestTransaction:
    return RequestTransaction(engine, conn, ALICE, read_only=read_only, statement_timeout_ms=1500)  # type: ignore[arg-type]


async def test_the_transaction_is_piccolos_current_one_and_nested_ones_join_it(engine: PostgresEngine) -> None:
    conn = FakeConnection()
    async with _txn(engine, conn, read_only=True) as txn:
        assert engine.current_transaction.get() is txn
        assert txn.connection is conn
        async with engine.transaction() as nested:
            assert nested is txn
        await txn.finish(200)
    assert engine.current_transaction.get() is None
    begin, commit = conn.sent
    assert begin.startswith("BEGIN READ ONLY;") and "'1500'" in begin and ALICE.sub in begin  # one message
    assert commit == COMMIT_AND_RESET_SQL and conn.reset_done


async def test_an_error_status_rolls_back(engine: PostgresEngine) -> None:
    conn = FakeConnection()
    async with _txn(engine, conn) as txn:
        await txn.finish(422)
    assert conn.sent[0].startswith("BEGIN;") and conn.sent[1:] == ["ROLLBACK"] and not conn.reset_done


async def test_leaving_without_finishing_rolls_back(engine: PostgresEngine) -> None:
    conn = FakeConnection()
    with pytest.raises(RuntimeError):
        async with _txn(engine, conn):
            raise RuntimeError("the app failed")
    assert conn.sent[1:] == ["ROLLBACK"]
    conn = FakeConnection()
    async with _txn(engine, conn):
        pass
    assert conn.sent[1:] == ["ROLLBACK"]


async def test_a_cancellation_drops_the_connection_without_waiting(engine: PostgresEngine) -> None:
    conn = FakeConnection()
    with pytest.raises(asyncio.CancelledError):
        async with _txn(engine, conn):
            raise asyncio.CancelledError
    assert conn.terminated and conn.sent[1:] == []
    assert engine.current_transaction.get() is None


async def test_a_failed_begin_discards_the_connection(engine: PostgresEngine) -> None:
    conn = FakeConnection(fail={"BEGIN": asyncpg.exceptions.ConnectionDoesNotExistError("gone")})
    with pytest.raises(TransactionNotBegun) as caught:
        async with _txn(engine, conn):
            pytest.fail("the body ran without a transaction")
    assert isinstance(caught.value.__cause__, asyncpg.exceptions.ConnectionDoesNotExistError)
    assert conn.terminated and engine.current_transaction.get() is None


async def test_a_commit_the_server_refuses_is_rolled_back(engine: PostgresEngine) -> None:
    conn = FakeConnection(fail={COMMIT_AND_RESET_SQL: asyncpg.exceptions.SerializationError("conflict")})
    with pytest.raises(CommitRefused):
        async with _txn(engine, conn) as txn:
            await txn.finish(201)
    assert conn.sent[1:] == [COMMIT_AND_RESET_SQL, "ROLLBACK"] and not conn.terminated


async def test_a_commit_answered_by_rollback_is_refused(engine: PostgresEngine) -> None:
    conn = FakeConnection(commit_answer="ROLLBACK")
    with pytest.raises(CommitRefused):
        async with _txn(engine, conn) as txn:
            await txn.finish(200)
    assert conn.sent[1:] == [COMMIT_AND_RESET_SQL] and not conn.reset_done


async def test_a_commit_without_answer_has_an_unknown_outcome(engine: PostgresEngine) -> None:
    conn = FakeConnection(fail={COMMIT_AND_RESET_SQL: asyncpg.exceptions.ConnectionDoesNotExistError("gone")})
    with pytest.raises(CommitOutcomeUnknown):
        async with _txn(engine, conn) as txn:
            await txn.finish(200)
    assert conn.terminated and conn.sent[1:] == [COMMIT_AND_RESET_SQL]  # no ROLLBACK on a dead connection


# --- failures -> the contract's errors ------------------------------------------------------


def test_commit_failures_say_whether_anything_was_saved() -> None:
    refused = commit_failure(CommitRefused("x"))
    assert (refused.status, refused.code) == (409, "conflict")
    unknown = commit_failure(CommitOutcomeUnknown("x"))
    assert (unknown.status, unknown.code, unknown.details) == (503, "database_unavailable", {"outcome": "unknown"})


def test_only_unexpected_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    scope: Scope = {"state": {"request_id": "req-1"}}
    with caplog.at_level(logging.ERROR, logger="centrid.error"):
        assert unavailable("acquire_failed", scope, ConnectionRefusedError()).status == 503
        assert unavailable("begin_failed", scope, asyncpg.exceptions.InsufficientPrivilegeError()).status == 503
        assert app_failure(scope, asyncpg.exceptions.ConnectionDoesNotExistError()).status == 503
        assert not caplog.records
        assert unavailable("begin_failed", scope, ValueError("bug")).status == 503
        assert app_failure(scope, KeyError("bug")).code == "internal_error"
    assert [r.getMessage().count('"request_id":"req-1"') for r in caplog.records] == [1, 1]
    assert all('"traceback":"' in r.getMessage() for r in caplog.records)


def test_database_down_is_the_connection_not_the_request() -> None:
    for down in (OSError(), TimeoutError(), asyncpg.exceptions.ConnectionDoesNotExistError(),
                 asyncpg.exceptions.AdminShutdownError(), asyncpg.exceptions.InterfaceError("closed")):
        assert database_down(down) and not database_refused(down), down
    for answered in (asyncpg.exceptions.QueryCanceledError(), asyncpg.exceptions.UniqueViolationError()):
        assert database_refused(answered) and not database_down(answered), answered
    assert not database_down(ValueError()) and not database_refused(ValueError())


# --- buffering and the disconnect watch ------------------------------------------------------


def _receive(*messages: Message, then_wait: bool = True) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then_wait:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


async def test_the_body_is_read_whole_within_its_limit() -> None:
    parts = _receive({"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"cd"})
    assert await read_body(parts, None, 4) == b"abcd"
    with pytest.raises(BodyTooLarge):
        await read_body(_receive(), "5", 4)  # the declared length is enough
    with pytest.raises(BodyTooLarge):
        await read_body(_receive({"type": "http.request", "body": b"abcde"}), None, 4)
    with pytest.raises(ClientDisconnected):
        await read_body(_receive({"type": "http.disconnect"}), None, 4)


async def _ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": body.upper()})


async def test_the_response_is_held_then_replayed() -> None:
    response = await run_buffered(_ok_app, {}, b"hi", _receive())
    assert response.status == 201 and response.failure is None
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await response.replay(send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] and sent[1]["body"] == b"HI"


async def test_an_app_exception_is_kept_for_the_failure_mapping() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("handler bug")

    response = await run_buffered(app, {}, b"", _receive())
    assert isinstance(response.failure, LookupError)


@pytest.mark.parametrize("app_swallows_it", [False, True])
async def test_a_disconnect_cancels_the_app(app_swallows_it: bool) -> None:
    cancelled = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            if not app_swallows_it:
                raise

    task = asyncio.ensure_future(run_buffered(app, {}, b"", _receive({"type": "http.disconnect"})))
    with pytest.raises(ClientDisconnected):
        await task
    assert cancelled.is_set()
    assert task.cancelling() == 0  # the watcher's cancellation was absorbed


async def test_a_shutdown_cancellation_goes_through() -> None:
    started = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(run_buffered(app, {}, b"", _receive()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- request state --------------------------------------------------------------------------


def test_headers_are_parsed_once_per_request() -> None:
    scope: Scope = {"headers": [(b"authorization", b"Bearer x"), (b"x-request-id", b"r1")]}
    headers = request_headers(scope)
    assert request_headers(scope) is headers
    assert (headers.get("Authorization"), headers.get("x-request-id"), headers.get("host")) == ("Bearer x", "r1", None)
    state = request_state(scope)
    assert state is scope["state"] and state["headers"] is headers
