"""The request's transaction: Piccolo's, begun and ended our way.

Piccolo runs every query on its current transaction's connection, and a
nested `engine.transaction()` joins it, so making the request's transaction
Piccolo's current one is what puts a handler's queries on the caller's
connection, as the caller.

`RequestTransaction` is a `PostgresTransaction` that overrides the hooks
Piccolo's `async with` calls, each for one reason:

- `get_connection`: Piccolo would acquire from the pool here. The request
  scope has already acquired (behind its admission queue, with a timeout
  that is its own 503), so the hook hands over that connection. Piccolo has
  no "use this connection" parameter; this is the method it asks.
- `begin`: BEGIN and the caller's claims and role in one message (issue 8's
  round-trip economy), instead of a bare BEGIN.
- `commit`: COMMIT with the pool's reset folded into the same message; a
  failure says whether anything was saved (`CommitRefused`) or that nobody
  knows (`CommitOutcomeUnknown`).
- `rollback`: never raises; a connection that cannot roll back is discarded.
- `__aenter__` / `__aexit__`: a connection that failed to begin is
  discarded, not reused; on exit nothing is committed that `finish` did not
  commit, and the connection goes back to the scope that acquired it (Piccolo
  would release it to the pool itself, before the response is sent).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction

from centrid.db.pool import COMMIT_AND_RESET_SQL, mark_reset
from centrid.errors import database_refused
from centrid.request.claims import Caller, begin_scope

Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class TransactionNotBegun(Exception):
    """BEGIN (or setting the claims) failed; the cause is chained. The
    connection was discarded."""


class CommitFailed(Exception):
    """COMMIT did not succeed; the cause, if any, is chained."""


class CommitRefused(CommitFailed):
    """The server answered COMMIT with an error or a ROLLBACK (a deferred
    constraint, a serialization failure, an error a handler swallowed):
    nothing was saved, and a retry may succeed."""


class CommitOutcomeUnknown(CommitFailed):
    """No answer to COMMIT: it may or may not have happened. The connection
    was discarded."""


def commits(status: int) -> bool:
    """The commit policy: a request's work is kept only when its response
    says it succeeded, so a client never sees an error for work that was
    saved, nor success for work that was not."""
    return 0 < status < 400


class RequestTransaction(PostgresTransaction):
    """One request's transaction on the connection the request scope holds."""

    def __init__(
        self, engine: PostgresEngine, connection: Connection, caller: Caller, *, read_only: bool, statement_timeout_ms: int
    ) -> None:
        # Never nested: each request runs in a fresh context, and a request
        # joining someone else's transaction would run as the wrong caller.
        super().__init__(engine, allow_nested=False)
        self._held = connection
        self._caller = caller
        self._read_only = read_only
        self._statement_timeout_ms = statement_timeout_ms

    async def get_connection(self) -> Connection:
        return self._held

    async def begin(self) -> None:
        await begin_scope(
            self.connection, self._caller, read_only=self._read_only, statement_timeout_ms=self._statement_timeout_ms
        )

    async def finish(self, status: int) -> None:
        """End the transaction as the commit policy says for `status`."""
        if commits(status):
            await self.commit()
        else:
            await self.rollback()

    async def commit(self) -> None:
        try:
            outcome = await self.connection.execute(COMMIT_AND_RESET_SQL)
        except Exception as exc:
            if database_refused(exc):
                await self.rollback()  # still open if it failed before COMMIT
                raise CommitRefused("the server refused the COMMIT") from exc
            self.discard()
            raise CommitOutcomeUnknown("no answer to COMMIT") from exc
        if outcome != "COMMIT":
            self._rolled_back = True
            raise CommitRefused("the transaction was rolled back at COMMIT")
        mark_reset(self.connection)
        self._committed = True

    async def rollback(self) -> None:
        try:
            await self.connection.execute("ROLLBACK")
        except Exception:
            self.discard()
        self._rolled_back = True

    def discard(self) -> None:
        """End the transaction by closing its connection: for one that may
        be dead, or that must not be waited on (shutdown)."""
        terminate(self._held)
        self._rolled_back = True

    async def __aenter__(self) -> RequestTransaction:
        try:
            await super().__aenter__()
        except Exception as exc:
            terminate(self._held)
            raise TransactionNotBegun(repr(exc)) from exc
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
            if not (self._committed or self._rolled_back):
                if isinstance(exception, asyncio.CancelledError):
                    self.discard()  # shutdown: drop the work without waiting for the server
                else:
                    await self.rollback()
        finally:
            self.engine.current_transaction.reset(self.context)
        return False


def terminate(conn: Connection) -> None:
    """Discard a connection that may already be closed, or whose proxy
    asyncpg already detached (terminate() then raises InterfaceError)."""
    try:
        conn.terminate()
    except Exception:
        pass
