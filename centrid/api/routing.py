"""The rules every API path follows, whatever its resource.

One Starlette route per path whose dispatcher picks the handler by method,
so HEAD is answered as GET, a method the path lacks is a 405 naming the
ones it has (`Allow`), and an anonymous write is a 401 before any handler
(and so any lookup that could say 404) runs.
"""

from __future__ import annotations

from collections import defaultdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from centrid.api.http import Endpoint, Handler, caller_of
from centrid.errors import ApiError, unauthorized
from centrid.schema import roles

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _dispatcher(by_method: dict[str, Handler], reads_only: frozenset[str]) -> Handler:
    allowed = ", ".join(sorted(by_method))

    async def dispatch(request: Request) -> Response:
        handler = by_method.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed here", {"allow": allowed})
        if request.method in WRITE_METHODS and request.method not in reads_only and caller_of(request).role == roles.ANON:
            # Authentication, not authorization: anon holds no write grant
            # anywhere, so say "sign in" before any lookup can say "404".
            raise unauthorized("sign in to do this")
        return await handler(request)

    return dispatch


def api_routes(endpoints: list[Endpoint]) -> list[BaseRoute]:
    grouped: dict[str, dict[str, Handler]] = defaultdict(dict)
    reading: dict[str, set[str]] = defaultdict(set)
    for ep in endpoints:
        grouped[ep.path][ep.method] = ep.handler
        if ep.reads_only:
            reading[ep.path].add(ep.method)
    return [
        Route(path, _dispatcher(methods, frozenset(reading[path])), methods=list(methods))
        for path, methods in grouped.items()
    ]
