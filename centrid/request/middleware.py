"""One request = one pooled connection = one transaction, as the caller.

A pure ASGI middleware (not BaseHTTPMiddleware, which would run the
endpoint in another task and lose the context variable Piccolo reads its
current transaction from). For each HTTP request it:

1. reads the body, at most `max_body_bytes`, *before* taking a database
   connection, so slow uploads never hold one (buffering.py);
2. verifies the bearer token (or takes anon) - a bad token never reaches
   the database;
3. waits its turn in the fair admission queue (admission.py), acquires one
   connection (acquire timeout -> 503) and begins the request's transaction
   as the caller, Piccolo's current one (transaction.py);
4. runs the app, holding its response (buffering.py); ends the transaction
   as the commit policy says (commit below 400, else roll back), and only
   then sends the response, so a client never sees success for work that
   did not commit;
5. if the client disconnects first, cancels the app and rolls back;
6. releases the connection in every case.

A lost database connection, wherever it shows (acquire, BEGIN, a query in
the handler, COMMIT, ROLLBACK, release), is a 503 with the JSON body; the
clean-up calls on a dead connection never raise past us, so the client always
gets an answer. A COMMIT whose outcome is unknown is a 503 saying so. Which
failure gets which answer, and what is logged: failures.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from piccolo.engine.postgres import PostgresEngine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from centrid.errors import database_unavailable, payload_too_large, unauthorized
from centrid.request.admission import Admission, Overloaded
from centrid.request.buffering import BodyTooLarge, read_body, run_buffered
from centrid.request.claims import Caller
from centrid.request.failures import app_failure, commit_failure, overloaded, send_error, unavailable
from centrid.request.state import request_headers, request_state
from centrid.schema.roles import ADMIN_ROLE
from centrid.request.tokens import InvalidToken, TokenCache
from centrid.request.transaction import CommitFailed, Connection, RequestTransaction, TransactionNotBegun


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

    def _is_admin(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path == self.admin_prefix or path.startswith(self.admin_prefix + "/")

    def _caller(self, scope: Scope, headers: Headers) -> Caller:
        if self._is_admin(scope):
            # Piccolo Admin authenticates with its own session login; its
            # queries run under the admin role, never under a user token.
            return Caller(role=ADMIN_ROLE)
        return self.tokens.caller(headers.get("authorization"), self.jwt_secret())

    def _read_only(self, scope: Scope) -> bool:
        """GET and HEAD run in READ ONLY transactions (as PostgREST does): a
        read can never write, and could be sent to a replica. Not the admin,
        whose session login may refresh its session on any request."""
        return scope["method"] in ("GET", "HEAD") and not self._is_admin(scope)

    async def _scoped(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        limit = self._body_limit(scope)
        try:
            body = await read_body(receive, headers.get("content-length"), limit)
        except BodyTooLarge:
            await send_error(send, payload_too_large(limit), close=True)
            return
        try:
            caller = self._caller(scope, headers)
        except InvalidToken as exc:
            await send_error(send, unauthorized(str(exc)))
            return
        request_state(scope)["caller"] = caller

        try:
            await self.admission.enter()
        except Overloaded as exc:
            await send_error(send, overloaded(exc.retry_after), headers=[(b"retry-after", b"%d" % exc.retry_after)])
            return
        try:
            await self._with_connection(caller, scope, body, receive, send)
        finally:
            self.admission.leave()

    async def _with_connection(self, caller: Caller, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        pool = self.engine.pool
        if pool is None:
            await send_error(send, database_unavailable())
            return
        try:
            conn = await pool.acquire(timeout=self.acquire_timeout)
        except Exception as exc:
            await send_error(send, unavailable("acquire_failed", scope, exc))
            return
        try:
            await self._in_transaction(conn, caller, scope, body, receive, send)
        finally:
            try:
                await pool.release(conn)
            except Exception:
                # asyncpg already terminated it (its reset failed); the pool
                # opens a new one when needed. The response is sent.
                pass

    async def _in_transaction(
        self, conn: Connection, caller: Caller, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> None:
        txn = RequestTransaction(
            self.engine, conn, caller, read_only=self._read_only(scope), statement_timeout_ms=self.statement_timeout_ms
        )
        try:
            async with txn:
                response = await run_buffered(self.app, scope, body, receive)
                if response.failure is None:
                    await txn.finish(response.status)
                # else leaving the block rolls the work back, before the error is sent
        except TransactionNotBegun as exc:
            await send_error(send, unavailable("begin_failed", scope, exc.__cause__ or exc))
        except CommitFailed as exc:
            await send_error(send, commit_failure(exc))
        else:
            if response.failure is not None:
                await send_error(send, app_failure(scope, response.failure))
            else:
                await response.replay(send)
