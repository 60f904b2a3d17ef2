"""The one error shape of the contract, shared by the request scope and the
API, and the one definition of "the database is down" (a 503 wherever it
surfaces: the request scope, the error mapping, the health check).

`{"error": {"code": ..., "message": ..., "details": ...}}`; never a stack
trace.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from starlette.responses import Response


# Failures that mean "the database is not there (any more)", not "your
# request is bad", wherever they surface: acquire, BEGIN, a query inside a
# handler, COMMIT, ROLLBACK. Class 08 (connection exception) and the
# shutdown/crash members of class 57; not 57014 (statement timeout).
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    # The driver's protocol state on a connection that died mid-operation
    # ("another operation is in progress"): the connection is unusable.
    asyncpg.exceptions.InternalClientError,
)

# Every failure that is the database's doing, not a bug of ours: it is down,
# or it answered with an error. Logged as an event, never with a traceback.
DATABASE_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *DATABASE_DOWN)


def database_down(exc: BaseException) -> bool:
    """The answer is 503 "database_unavailable", whatever the request was."""
    return isinstance(exc, DATABASE_DOWN)


def database_refused(exc: BaseException) -> bool:
    """The server is there and answered with an error (it did not just go away)."""
    return isinstance(exc, asyncpg.PostgresError) and not database_down(exc)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error_body(error.code, error.message, error.details),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str, details: Any = None) -> ApiError:
    return ApiError(403, "forbidden", message, details)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError(409, "conflict", message, details)


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes", {"limit": limit})


def validation_error(details: list[dict[str, Any]], message: str = "request validation failed") -> ApiError:
    return ApiError(422, "validation_error", message, details)


def database_unavailable() -> ApiError:
    return ApiError(503, "database_unavailable", "the database is unavailable; try again")


def commit_outcome_unknown() -> ApiError:
    """The connection went away during COMMIT: the change may or may not be
    saved, so it is never answered as a success."""
    return ApiError(
        503,
        "database_unavailable",
        "the database connection was lost while committing; the outcome is unknown: read the data back before retrying",
        {"outcome": "unknown"},
    )


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "internal error")
