"""The ASGI application: routes, error handling, middleware, admin, lifespan."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from centrid import metrics
from centrid.api import agents, documents, profiles, search, system, usage
from centrid.api.cors import JsonCORSMiddleware
from centrid.api.db_errors import load_column_privileges, map_database_error
from centrid.api.http import Endpoint, Handler, caller_of, json_response
from centrid.api.openapi import build_openapi
from centrid.config import Settings, settings
from centrid.db.engine import describe_dsn
from centrid.errors import DATABASE_DOWN, ApiError, error_response, unauthorized
from centrid.request.access_log import AccessLogMiddleware
from centrid.request.middleware import RequestScopeMiddleware
from centrid.db.pool import close_pool, login_risk, open_pool
from centrid.request.secret import jwt_secret

log = logging.getLogger("centrid.server")

ENDPOINTS: list[Endpoint] = [
    *system.ENDPOINTS,
    *profiles.ENDPOINTS,
    *documents.ENDPOINTS,
    *search.ENDPOINTS,
    *agents.ENDPOINTS,
    *usage.ENDPOINTS,
]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNSCOPED_PATHS = frozenset({"/health", "/openapi.json"})
# Where a body may be a batch of up to 1,000 chunks (CENTRID_MAX_BATCH_BODY_BYTES).
BATCH_PATHS = re.compile(r"/api/documents/[^/]+/chunks")
HEALTH_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *DATABASE_DOWN)


def _dispatcher(by_method: dict[str, Handler], reads_only: frozenset[str]) -> Handler:
    allowed = ", ".join(sorted(by_method))

    async def dispatch(request: Request) -> Response:
        handler = by_method.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed here", {"allow": allowed})
        if request.method in WRITE_METHODS and request.method not in reads_only and caller_of(request).role == "anon":
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


def _engine() -> PostgresEngine:
    from piccolo.engine import engine_finder

    engine = engine_finder()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return engine


async def apply_migrations() -> None:
    """`piccolo migrations forwards all`, in process, serialized across
    replicas by the migrations' advisory lock. Runs before the request pool
    exists, so it uses the DSN's own (owner) role."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from centrid.db.migrations import migration_run_lock

    output = io.StringIO()
    async with migration_run_lock(_engine().config["dsn"]):
        with contextlib.redirect_stdout(output):
            result = await run_forwards("all")
    # Piccolo prints "  - <id> [forwards]... ok! ✔️" per applied migration.
    applied = [line.split("[forwards]")[0].strip(" -") for line in output.getvalue().splitlines() if "[forwards]" in line]
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")
    unknown = await unknown_migrations()
    if unknown:
        # Piccolo reports "nothing to run" here: the database is ahead of this code.
        log.warning(
            "the database holds migrations this code does not know: "
            f"{', '.join(unknown)}; a newer version of centrid migrated it, so run that version "
            "(or restore a backup taken before it)"
        )
    elif not applied:
        log.info("schema up to date")
    for migration_id in applied:
        log.info(f"applied migration {migration_id}")


async def unknown_migrations() -> list[str]:
    """'app:id' of every recorded migration of a registered app that has no
    migration file here."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.apps.migrations.tables import Migration
    from piccolo.conf.apps import Finder

    files = BaseMigrationManager()
    unknown: list[str] = []
    for app_config in Finder().get_app_configs():
        known = set(files.get_migration_modules(app_config.resolved_migrations_folder_path))
        recorded = await Migration.get_migrations_which_ran(app_name=app_config.app_name)
        unknown += [f"{app_config.app_name}:{mid}" for mid in recorded if mid not in known]
    return unknown


def create_app(cfg: Settings | None = None) -> Starlette:
    cfg = cfg or settings()
    engine = _engine()
    secret_holder: dict[str, str] = {}

    def current_secret() -> str:
        return secret_holder["value"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if cfg.database_url is None:
            # Held for the app's lifetime (a no-op when the import already
            # joined); the same socket, so the engine's DSN stays valid.
            from centrid.db.embedded import embedded_dsn

            embedded_dsn(cfg.data_dir)
        secret = jwt_secret(cfg)
        secret_holder["value"] = secret.value
        log.info(f"database: {describe_dsn(engine.config['dsn'])}")
        log.info(f"JWT secret: {secret.source}")
        if cfg.auto_migrate:
            await apply_migrations()
        pool_dsn = await open_pool(engine, cfg)
        log.info(
            f"request pool open as {describe_dsn(pool_dsn)} "
            f"(min {cfg.pool_min_size}, max {cfg.pool_max_size})"
        )
        assert engine.pool is not None
        async with engine.pool.acquire() as conn:
            await load_column_privileges(conn)
        risk = await login_risk(engine)
        if risk:
            log.warning(risk)
        if cfg.metrics_port is not None:
            metrics.start(cfg.host, cfg.metrics_port, engine.pool)
        try:
            yield
        finally:
            if cfg.metrics_port is not None:
                metrics.stop()
            await close_pool(engine)
            if cfg.database_url is None:
                # Leave the embedded PostgreSQL now, not only at exit: the last
                # user stops it, and a process may be killed after this point.
                from centrid.db.embedded import release

                release(cfg.data_dir)

    async def health(request: Request) -> Response:
        ok = False
        if engine.pool is not None:
            try:
                async with engine.pool.acquire(timeout=cfg.pool_acquire_timeout) as conn:
                    ok = await conn.fetchval("SELECT 1") == 1
            except HEALTH_FAILURES:
                ok = False
        if ok:
            return json_response({"status": "ok", "database": "ok"})
        return json_response({"status": "error", "database": "unavailable"}, status=503)

    openapi_doc = build_openapi(
        ENDPOINTS,
        title="Centrid data layer",
        version="0.1.0",
        extra_paths={
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
        },
    )

    async def openapi(request: Request) -> Response:
        return json_response(openapi_doc)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"allow": exc.details["allow"]} if exc.status == 405 and exc.details else None
        return error_response(exc, headers=headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)),
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, asyncpg.PostgresError)
        state = request.scope.get("state", {})
        state["database_error"] = type(exc).__name__
        return error_response(map_database_error(exc, caller_of(request).role, state.get("fields"), state.get("writes")))

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *api_routes(ENDPOINTS),
        Mount("/admin", app=_admin_app(cfg)),
    ]
    exception_handlers: dict[Any, Any] = {
        ApiError: on_api_error,
        HTTPException: on_http_error,
        asyncpg.PostgresError: on_database_error,
    }
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
            jwt_secret=current_secret,
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
    return Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers, lifespan=lifespan)


def _admin_app(cfg: Settings) -> Any:
    from centrid.api.admin import create_admin_app

    return create_admin_app(cfg)
