"""The ASGI application, composed: routes, middleware, error handlers, lifespan.

Each part lives in its own module (routing rules in api/routing.py, health
in api/system.py, the error handlers in api/error_handlers.py, start and
stop in api/lifespan.py); this one only says which parts make the app.
"""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from centrid.api.admin import create_admin_app
from centrid.api import agents, documents, profiles, search, system, usage
from centrid.api.cors import JsonCORSMiddleware
from centrid.api.error_handlers import EXCEPTION_HANDLERS
from centrid.api.http import Endpoint
from centrid.api.lifespan import Lifespan
from centrid.api.openapi import openapi_route
from centrid.api.routing import api_routes
from centrid.config import Settings, settings
from centrid.db.engine import configured_engine
from centrid.request.access_log import AccessLogMiddleware
from centrid.request.middleware import RequestScopeMiddleware

ENDPOINTS: list[Endpoint] = [
    *system.ENDPOINTS,
    *profiles.ENDPOINTS,
    *documents.ENDPOINTS,
    *search.ENDPOINTS,
    *agents.ENDPOINTS,
    *usage.ENDPOINTS,
]

UNSCOPED_PATHS = frozenset({"/health", "/openapi.json"})
# Where a body may be a batch of up to 1,000 chunks (CENTRID_MAX_BATCH_BODY_BYTES).
BATCH_PATHS = re.compile(r"/api/documents/[^/]+/chunks")


def create_app(cfg: Settings | None = None) -> Starlette:
    cfg = cfg or settings()
    engine = configured_engine()
    lifespan = Lifespan(cfg, engine)
    routes: list[BaseRoute] = [
        system.health_route(engine, cfg.pool_acquire_timeout),
        openapi_route(ENDPOINTS, extra_paths=system.HEALTH_OPENAPI),
        *api_routes(ENDPOINTS),
        Mount("/admin", app=create_admin_app(cfg)),
    ]
    middleware = [
        Middleware(AccessLogMiddleware),
        Middleware(
            JsonCORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
            max_age=600,
        ),
        Middleware(
            RequestScopeMiddleware,
            engine=engine,
            jwt_secret=lifespan.secret,
            max_body_bytes=cfg.max_body_bytes,
            acquire_timeout=cfg.pool_acquire_timeout,
            statement_timeout_ms=cfg.statement_timeout_ms,
            unscoped_paths=UNSCOPED_PATHS,
            token_cache_size=cfg.token_cache_size,
            pool_max_size=cfg.pool_max_size,
            batch_paths=BATCH_PATHS,
            max_batch_body_bytes=cfg.max_batch_body_bytes,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
