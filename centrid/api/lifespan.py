"""What the app does at start and at stop, in order.

Start: join the embedded PostgreSQL (when no DATABASE_URL), load the JWT
secret, migrate (unless CENTRID_AUTO_MIGRATE=0), open the request pool,
load the column privileges the error messages name, warn about a login
that could bypass security, start the metrics listener. Stop undoes it in
reverse. The secret is held here because the request scope needs it but
only exists once the app has started.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from piccolo.engine.postgres import PostgresEngine
from starlette.applications import Starlette

from centrid import metrics
from centrid.api.db_errors import load_column_privileges
from centrid.config import Settings
from centrid.db.engine import describe_dsn
from centrid.db.migration_runner import apply_migrations
from centrid.db.pool import close_pool, login_risk, open_pool
from centrid.request.secret import jwt_secret

log = logging.getLogger("centrid.server")


class Lifespan:
    """Starlette's lifespan for one app; `secret` is for the request scope."""

    def __init__(self, cfg: Settings, engine: PostgresEngine) -> None:
        self._cfg = cfg
        self._engine = engine
        self._secret: str | None = None

    def secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("the JWT secret is loaded when the app starts")
        return self._secret

    @contextlib.asynccontextmanager
    async def __call__(self, app: Starlette) -> AsyncIterator[None]:
        cfg, engine = self._cfg, self._engine
        if cfg.database_url is None:
            # Held for the app's lifetime (a no-op when the import already
            # joined); the same socket, so the engine's DSN stays valid.
            from centrid.db.embedded import embedded_dsn

            embedded_dsn(cfg.data_dir)
        secret = jwt_secret(cfg)
        self._secret = secret.value
        log.info(f"database: {describe_dsn(engine.config['dsn'])}")
        log.info(f"JWT secret: {secret.source}")
        if cfg.auto_migrate:
            await apply_migrations()
        await self._open_pool()
        if cfg.metrics_port is not None:
            assert engine.pool is not None
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

    async def _open_pool(self) -> None:
        cfg, engine = self._cfg, self._engine
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
