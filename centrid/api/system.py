"""Health, the seed's hello example."""

from __future__ import annotations

import datetime
from typing import Any

from piccolo.engine.postgres import PostgresEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from centrid.api import models
from centrid.api.http import Endpoint, caller_of, json_response
from centrid.errors import DATABASE_FAILURES
from centrid.schema.tables import TABLE_CLASSES

_COUNTS_SQL = "SELECT " + ", ".join(
    f'(SELECT count(*) FROM "{t._meta.tablename}") AS "{t._meta.tablename}"' for t in TABLE_CLASSES
)

# /health is outside the request scope (no token, no transaction), so it is
# no Endpoint; its OpenAPI entry is written out here instead.
HEALTH_OPENAPI: dict[str, Any] = {
    "/health": {
        "get": {
            "summary": "Liveness and database reachability",
            "tags": ["system"],
            "responses": {
                "200": {"description": "OK"},
                "503": {"description": "Database unavailable"},
            },
        }
    }
}


def health_route(engine: PostgresEngine, acquire_timeout: float) -> Route:
    """`GET /health`: a pooled connection answers `SELECT 1` within the
    request's own acquire timeout, or the database counts as unavailable."""

    async def health(request: Request) -> Response:
        ok = False
        if engine.pool is not None:
            try:
                async with engine.pool.acquire(timeout=acquire_timeout) as conn:
                    ok = await conn.fetchval("SELECT 1") == 1
            except DATABASE_FAILURES:  # a 503, never a 500
                ok = False
        if ok:
            return json_response({"status": "ok", "database": "ok"})
        return json_response({"status": "error", "database": "unavailable"}, status=503)

    return Route("/health", health, methods=["GET"])


async def hello(request: Request) -> Response:
    caller = caller_of(request)
    (counts,) = await TABLE_CLASSES[0].raw(_COUNTS_SQL).run()
    return json_response(
        models.Hello(
            message=f"Hello from Centrid, {caller.role}!",
            timestamp=datetime.datetime.now(datetime.timezone.utc),
            role=caller.role,
            user_id=caller.sub,  # type: ignore[arg-type]
            visible_rows={k: int(v) for k, v in dict(counts).items()},
        )
    )


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/hello", hello, "Greeting, timestamp, rows visible to the caller per table", "system",
             response=models.Hello, errors=(401,)),
]
