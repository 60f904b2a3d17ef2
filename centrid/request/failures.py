"""What the request scope answers when something fails outside the app's
own responses, and what it logs.

A failure that is the database's doing (down, or refusing) is an expected
event: a 503, logged without a traceback. Anything else is a bug of ours:
a 500 (or 503 where the database was involved), logged with its traceback
and the request id. The client always gets the contract's JSON error body.
"""

from __future__ import annotations

import logging
import traceback

import orjson
from starlette.types import Scope, Send

from centrid.errors import (
    DATABASE_FAILURES,
    ApiError,
    commit_outcome_unknown,
    conflict,
    database_down,
    database_unavailable,
    error_body,
    internal_error,
)
from centrid.request.state import request_state
from centrid.request.transaction import CommitFailed, CommitRefused

error_log = logging.getLogger("centrid.error")


def unavailable(event: str, scope: Scope, exc: BaseException) -> ApiError:
    """No usable connection (acquire or BEGIN failed): never the client's
    fault. Opening a connection to a crashed or restarting server fails in
    many ways; only the unexpected ones are logged."""
    if not isinstance(exc, DATABASE_FAILURES):
        _log_unexpected(event, scope, exc)
    return database_unavailable()


def app_failure(scope: Scope, exc: Exception) -> ApiError:
    """An exception the app let escape (its work was rolled back)."""
    if database_down(exc):
        return database_unavailable()
    _log_unexpected("unhandled_exception", scope, exc)
    return internal_error()


def commit_failure(exc: CommitFailed) -> ApiError:
    error_log.warning(orjson.dumps({"event": "commit_failed", "error": repr(exc.__cause__ or exc)}).decode())
    if isinstance(exc, CommitRefused):
        return conflict("the change could not be committed; retry")
    return commit_outcome_unknown()


def overloaded(retry_after: int) -> ApiError:
    """Shed by admission: the contract's 503 (same code as any database
    unavailability), saying when to come back."""
    return ApiError(
        503, "database_unavailable", f"too many requests are waiting for the database; retry in {retry_after} s",
        {"retry_after": retry_after},
    )


async def send_error(
    send: Send, error: ApiError, *, close: bool = False, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), *(headers or [])]
    if close:
        headers.append((b"connection", b"close"))
    body = error_body(error.code, error.message, error.details)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log_unexpected(event: str, scope: Scope, exc: BaseException) -> None:
    error_log.error(
        orjson.dumps(
            {
                "event": event,
                "request_id": request_state(scope).get("request_id"),
                "error": repr(exc),
                "traceback": "".join(traceback.format_exception(exc)),
            }
        ).decode()
    )
