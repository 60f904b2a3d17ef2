"""What one request carries from layer to layer, typed in one place.

The access log, the request scope, the handlers and the error handlers all
meet in the ASGI scope's `state` dict (Starlette's `request.state` is the
same dict). Declaring its keys here lets mypy check every reader against
every writer; a misspelt key is a type error instead of a silent `None`.
"""

from __future__ import annotations

from typing import TypedDict, cast

from starlette.datastructures import Headers
from starlette.types import Scope

from centrid.request.claims import Caller


class RequestState(TypedDict, total=False):
    # Set by the access log, the outermost layer; echoed as X-Request-ID.
    request_id: str
    # Set by the request scope once the token is verified.
    caller: Caller
    # Set by parse_body: the fields the client sent, and (table, "INSERT" |
    # "UPDATE") they are written to, so a 403 can name the refused ones.
    fields: list[str]
    writes: tuple[str, str]
    # Set by the database error handler: the exception class, for metrics.
    database_error: str
    # The request headers, parsed once for every layer (see request_headers).
    headers: Headers


def request_state(scope: Scope) -> RequestState:
    """The request's state, created on first use."""
    return cast(RequestState, scope.setdefault("state", {}))


def request_headers(scope: Scope) -> Headers:
    """The request headers, built once per request: `Headers(scope=...)`
    copies the header list, and three layers look headers up."""
    state = request_state(scope)
    headers = state.get("headers")
    if headers is None:
        headers = state["headers"] = Headers(scope=scope)
    return headers
