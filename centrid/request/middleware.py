"""One request = one pooled connection = one transaction, as the caller.

A pure ASGI middleware (not BaseHTTPMiddleware, which would run the
endpoint in another task and lose the context variable Piccolo reads its
current transaction from). For each HTTP request it:

1. reads the body, at most `max_body_bytes`, *before* taking a database
   connection, so slow uploads never hold one;
2. verifies the bearer token (or takes anon) - a bad token never reaches
   the database;
3. acquires one connection (acquire timeout -> 503), begins a transaction,
   sets the caller's claims and role LOCAL and makes that transaction
   Piccolo's current one;
4. runs the app, buffering its response; commits when the status is below
   400, otherwise rolls back, and only then sends the response, so a client
   never sees success for work that did not commit;
5. if the client disconnects first, cancels the app and rolls back;
6. releases the connection in every case.

A lost database connection, wherever it shows (acquire, BEGIN, a query in
the handler, COMMIT, ROLLBACK, release), is a 503 with the JSON body; the
clean-up calls on a dead connection never raise past us, so the client always
gets an answer. A COMMIT whose outcome is unknown is a 503 saying so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Callable
from typing import TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from centrid.errors import (
    DATABASE_DOWN,
    ApiError,
    commit_outcome_unknown,
    database_unavailable,
    error_body,
    internal_error,
    payload_too_large,
    unauthorized,
)
from centrid.request.admission import Admission, Overloaded
from centrid.request.claims import Caller, begin_scope
from centrid.schema.roles import ADMIN_ROLE
from centrid.db.pool import COMMIT_AND_RESET_SQL, mark_reset
from centrid.request.tokens import InvalidToken, TokenCache

error_log = logging.getLogger("centrid.error")


Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class ClientDisconnected(Exception):
    """The client went away before the response; the work was rolled back."""


class _BodyTooLarge(Exception):
    pass


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a (lower-case) request header."""
    for key, value in scope.get("headers", ()):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestScopeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: PostgresEngine,
        jwt_secret: Callable[[], str],
        max_body_bytes: int,
        acquire_timeout: float,
        statement_timeout_ms: int,
        unscoped_paths: frozenset[str] = frozenset(),
        admin_prefix: str = "/admin",
        token_cache_size: int = 0,
        pool_max_size: int = 10,
        batch_paths: re.Pattern[str] | None = None,
        max_batch_body_bytes: int = 0,
    ) -> None:
        self.app = app
        self.engine = engine
        self.jwt_secret = jwt_secret
        self.max_body_bytes = max_body_bytes
        # Batch writes (up to 1,000 chunks with 384-number embeddings, ~8 MB
        # of JSON) get their own, larger limit; everything else keeps the
        # small one, so a slow upload elsewhere cannot hold much memory.
        self.batch_paths = batch_paths
        self.max_batch_body_bytes = max(max_batch_body_bytes, max_body_bytes)
        self.acquire_timeout = acquire_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.unscoped_paths = unscoped_paths
        self.admin_prefix = admin_prefix
        self.tokens = TokenCache(token_cache_size)
        # The fair queue in front of the pool; its patience is the acquire timeout.
        self.admission = Admission(pool_max_size, acquire_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unscoped_paths or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        await self._scoped(scope, receive, send)

    def _body_limit(self, scope: Scope) -> int:
        if self.batch_paths is not None and self.batch_paths.fullmatch(scope["path"]):
            return self.max_batch_body_bytes
        return self.max_body_bytes

    async def _read_body(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        declared = request_header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _is_admin(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path == self.admin_prefix or path.startswith(self.admin_prefix + "/")

    def _caller(self, scope: Scope) -> Caller:
        if self._is_admin(scope):
            # Piccolo Admin authenticates with its own session login; its
            # queries run under the admin role, never under a user token.
            return Caller(role=ADMIN_ROLE)
        return self.tokens.caller(request_header(scope, b"authorization"), self.jwt_secret())

    def _read_only(self, scope: Scope) -> bool:
        """GET and HEAD run in READ ONLY transactions (as PostgREST does): a
        read can never write, and could be sent to a replica. Not the admin,
        whose session login may refresh its session on any request."""
        return scope["method"] in ("GET", "HEAD") and not self._is_admin(scope)

    async def _scoped(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._body_limit(scope)
        try:
            body = await self._read_body(scope, receive, limit)
        except _BodyTooLarge:
            await _send_error(send, payload_too_large(limit), close=True)
            return
        try:
            caller = self._caller(scope)
        except InvalidToken as exc:
            await _send_error(send, unauthorized(str(exc)))
            return
        scope.setdefault("state", {})["caller"] = caller

        try:
            await self.admission.enter()
        except Overloaded as exc:
            await _send_error(send, overloaded(exc.retry_after), headers=[(b"retry-after", b"%d" % exc.retry_after)])
            return
        try:
            await self._with_connection(caller, scope, body, receive, send)
        finally:
            self.admission.leave()

    async def _with_connection(self, caller: Caller, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        pool = self.engine.pool
        if pool is None:
            await _send_error(send, database_unavailable())
            return
        try:
            conn = await pool.acquire(timeout=self.acquire_timeout)
        except Exception as exc:
            # Opening a connection to a crashed or restarting server fails
            # in many ways; none of them is the client's fault.
            if not isinstance(exc, (*DATABASE_DOWN, asyncpg.PostgresError)):
                _log_unexpected("acquire_failed", scope, exc)
            await _send_error(send, database_unavailable())
            return
        try:
            await self._run_in_transaction(conn, caller, scope, body, receive, send)
        finally:
            try:
                await pool.release(conn)
            except Exception:
                # asyncpg already terminated it (its reset failed); the pool
                # opens a new one when needed. The response is sent.
                pass

    async def _run_in_transaction(
        self,
        conn: Connection,
        caller: Caller,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        # Piccolo runs every query on `current_transaction.connection`, and a
        # nested `engine.transaction()` joins it; its lifecycle stays ours.
        txn = PostgresTransaction(self.engine)
        txn.connection = conn
        txn.transaction = conn.transaction()  # never started: Piccolo's nested transactions join ours
        buffered: list[Message] = []
        status = 0
        disconnected = asyncio.Event()
        body_sent = False

        async def replay_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def buffer_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            buffered.append(message)

        try:
            await begin_scope(conn, caller, read_only=self._read_only(scope), statement_timeout_ms=self.statement_timeout_ms)
        except Exception as exc:
            _terminate(conn)
            if not isinstance(exc, (*DATABASE_DOWN, asyncpg.PostgresError)):
                _log_unexpected("begin_failed", scope, exc)
            await _send_error(send, database_unavailable())
            return

        # The app runs in this task (one task per request, not two plus
        # asyncio.wait); the watcher cancels this task when the client leaves.
        current = asyncio.current_task()
        assert current is not None
        client_left = False
        absorbed = False

        async def watch_disconnect() -> None:
            nonlocal client_left
            await _wait_for_disconnect(receive)
            client_left = True
            disconnected.set()
            current.cancel()

        watcher = asyncio.ensure_future(watch_disconnect())
        failure: Exception | None = None
        token = self.engine.current_transaction.set(txn)
        try:
            await self.app(scope, replay_receive, buffer_send)
        except asyncio.CancelledError:
            # The watcher's cancellation is ours to absorb; any other
            # (shutdown) stops the app and drops the work.
            if not client_left or current.uncancel() > 0:
                watcher.cancel()
                _terminate(conn)
                raise
            absorbed = True
        except Exception as exc:
            failure = exc
        finally:
            self.engine.current_transaction.reset(token)
        if client_left:
            # Also when the app swallowed the cancellation and returned: the
            # client is gone, nothing is kept.
            if not absorbed and current.cancelling() > 0:
                current.uncancel()
            await _quiet_rollback(conn)
            raise ClientDisconnected
        watcher.cancel()

        if failure is not None:
            await _quiet_rollback(conn)
            if isinstance(failure, DATABASE_DOWN):
                await _send_error(send, database_unavailable())
            else:
                _log_unexpected("unhandled_exception", scope, failure)
                await _send_error(send, internal_error())
            return

        if 0 < status < 400:
            try:
                await _commit(conn)
            except Exception as exc:
                error_log.warning(orjson.dumps({"event": "commit_failed", "error": repr(exc)}).decode())
                if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, DATABASE_DOWN):
                    # The server answered: e.g. a deferred constraint or a
                    # serialization failure at COMMIT. Nothing was saved.
                    await _quiet_rollback(conn)  # still open if it had failed before COMMIT
                    await _send_error(send, ApiError(409, "conflict", "the change could not be committed; retry"))
                else:
                    # No answer to COMMIT: it may or may not have happened.
                    _terminate(conn)
                    await _send_error(send, commit_outcome_unknown())
                return
        else:
            await _quiet_rollback(conn)
        for message in buffered:
            await send(message)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _CommitRolledBack(asyncpg.PostgresError):
    """COMMIT answered ROLLBACK: the transaction had failed (e.g. an error a
    handler swallowed), so none of its work is kept."""


async def _commit(conn: Connection) -> None:
    """COMMIT, with the pool's reset folded into the same round trip."""
    if await conn.execute(COMMIT_AND_RESET_SQL) != "COMMIT":
        raise _CommitRolledBack("the transaction was rolled back at COMMIT")
    mark_reset(conn)


async def _quiet_rollback(conn: Connection) -> None:
    try:
        await conn.execute("ROLLBACK")
    except Exception:
        # The connection is unusable; make sure the pool discards it.
        _terminate(conn)


def _terminate(conn: Connection) -> None:
    """Discard a connection that may already be closed, or whose proxy
    asyncpg already detached (terminate() then raises InterfaceError)."""
    try:
        conn.terminate()
    except Exception:
        pass


def _log_unexpected(event: str, scope: Scope, exc: BaseException) -> None:
    error_log.error(
        orjson.dumps(
            {
                "event": event,
                "request_id": scope.get("state", {}).get("request_id"),
                "error": repr(exc),
                "traceback": "".join(traceback.format_exception(exc)),
            }
        ).decode()
    )


def overloaded(retry_after: int) -> ApiError:
    """Shed by admission: the contract's 503 (same code as any database
    unavailability), saying when to come back."""
    return ApiError(
        503, "database_unavailable", f"too many requests are waiting for the database; retry in {retry_after} s",
        {"retry_after": retry_after},
    )


async def _send_error(
    send: Send, error: ApiError, *, close: bool = False, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), *(headers or [])]
    if close:
        headers.append((b"connection", b"close"))
    body = error_body(error.code, error.message, error.details)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

