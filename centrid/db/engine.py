"""Which PostgreSQL we talk to, and the Piccolo engine for it.

DATABASE_URL wins; without it the embedded server (centrid.db.embedded) is
started. Every entry point (piccolo CLI, server, tests) comes through here so
they always agree on the database.
"""

from __future__ import annotations

import sys
from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine
from piccolo.querystring import QueryString

from centrid.config import Settings, settings
from centrid.db.embedded import embedded_dsn


def resolve_dsn(cfg: Settings | None = None) -> str:
    cfg = cfg or settings()
    if cfg.database_url:
        return cfg.database_url
    return embedded_dsn(cfg.data_dir)


def describe_dsn(dsn: str) -> str:
    """A DSN fit for logs: host and database, never a password."""
    from urllib.parse import urlsplit, parse_qs

    parts = urlsplit(dsn)
    host = parts.hostname or parse_qs(parts.query).get("host", ["?"])[0]
    db = parts.path.lstrip("/") or "postgres"
    return f"{parts.scheme}://{parts.username or ''}@{host}/{db}"


class CentridEngine(PostgresEngine):
    """Piccolo's PostgresEngine, plus: in a `piccolo migrations ...` CLI
    process, the first query takes the session-level migration run lock
    (centrid.db.migrations) and holds it until the process exits, so two
    processes migrating at once run one after the other."""

    def __init__(self, config: dict[str, Any], *, hold_migration_lock: bool | None = None) -> None:
        # extensions=(): Piccolo would otherwise CREATE EXTENSION "uuid-ossp"
        # in public; gen_random_uuid() is core since PostgreSQL 13.
        super().__init__(config=config, extensions=())
        self.hold_migration_lock = hold_migration_lock
        self._lock_connection: asyncpg.Connection | None = None

    async def _take_migration_lock(self) -> None:
        if self.hold_migration_lock is None:
            # Decided at the first query, not at import: the command line is
            # what it will be by then (a wrapper may import piccolo_conf first).
            self.hold_migration_lock = is_migrations_cli(sys.argv)
        if self.hold_migration_lock and self._lock_connection is None:
            from centrid.db.migrations import acquire_run_lock

            self._lock_connection = await acquire_run_lock(self.config["dsn"])

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        await self._take_migration_lock()
        return await super().run_querystring(querystring, in_pool=in_pool)

    async def run_ddl(self, ddl: str, in_pool: bool = True) -> Any:
        await self._take_migration_lock()
        return await super().run_ddl(ddl, in_pool=in_pool)


def is_migrations_cli(argv: list[str]) -> bool:
    """`piccolo migrations forwards|backwards ...` (as script or `-m piccolo.main`,
    whose argv[0] is then the path of piccolo/main.py)."""
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    return program in {"piccolo", "main.py"} and argv[1:3] in (["migrations", "forwards"], ["migrations", "backwards"])


def make_engine(dsn: str | None = None, *, hold_migration_lock: bool | None = None) -> CentridEngine:
    return CentridEngine(config={"dsn": dsn or resolve_dsn()}, hold_migration_lock=hold_migration_lock)


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


from centrid.schema.roles import AUTHENTICATOR_ROLE as AUTHENTICATOR_ROLE  # noqa: E402  (named once)


def with_user(dsn: str, user: str, password: str | None = None) -> str:
    """The same server and database, another login."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def request_dsn(cfg: Settings, owner_dsn: str) -> str:
    """The login the request pool uses.

    CENTRID_REQUEST_DATABASE_URL when set (e.g. Supabase's `authenticator`);
    for the embedded database, `centrid_authenticator`, which owns nothing
    and may only become the API roles; otherwise DATABASE_URL's own login
    (the server warns at start if that login could leave its scope).
    """
    if cfg.request_database_url:
        return cfg.request_database_url
    if cfg.database_url is None:
        return with_user(owner_dsn, AUTHENTICATOR_ROLE)
    return owner_dsn


def retarget(engine: PostgresEngine, dsn: str) -> None:
    """Point an engine (and every table bound to it) at another database.

    Tables resolve their engine once, so tests and tools swap the DSN on the
    same engine object rather than building a new one. Close its pool first.
    """
    if engine.pool is not None:
        raise RuntimeError("close the engine's pool before retargeting it")
    engine.config = {"dsn": dsn}


def configured_engine() -> PostgresEngine:
    """The engine piccolo_conf configured: what the server, the migration
    runner and every table class use."""
    from piccolo.engine import engine_finder

    engine = engine_finder()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return engine
