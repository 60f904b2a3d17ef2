"""What an exception escaping a handler becomes: always the contract's
JSON error shape, never Starlette's plain text or a 500 with a trace."""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from centrid.api.db_errors import map_database_error
from centrid.api.http import caller_of
from centrid.errors import ApiError, error_response
from centrid.request.state import request_state


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    # The routing 405 names what the path does allow, as HTTP asks.
    headers = {"allow": exc.details["allow"]} if exc.status == 405 and exc.details else None
    return error_response(exc, headers=headers)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405, in our shape."""
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(
        ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def on_database_error(request: Request, exc: Exception) -> Response:
    """A refusal by the database (RLS, a grant, a constraint) is the caller's
    answer; the request scope has noted which fields the body wrote, so the
    message can name them. The access log records the exception's class."""
    assert isinstance(exc, asyncpg.PostgresError)
    state = request_state(request.scope)
    state["database_error"] = type(exc).__name__
    return error_response(map_database_error(exc, caller_of(request).role, state.get("fields"), state.get("writes")))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    HTTPException: on_http_error,
    asyncpg.PostgresError: on_database_error,
}
