"""Which PostgreSQL we talk to, and the Piccolo engine for it.

DATABASE_URL wins; without it the embedded server (centrid.embedded) is
started. Every entry point (piccolo CLI, server, tests) comes through here so
they always agree on the database.
"""

from __future__ import annotations

from piccolo.engine.postgres import PostgresEngine

from centrid.config import Settings, settings
from centrid.embedded import embedded_dsn


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


def make_engine(dsn: str | None = None) -> PostgresEngine:
    # extensions=(): Piccolo would otherwise CREATE EXTENSION "uuid-ossp" in
    # public; gen_random_uuid() is core since PostgreSQL 13.
    return PostgresEngine(config={"dsn": dsn or resolve_dsn()}, extensions=())


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def retarget(engine: PostgresEngine, dsn: str) -> None:
    """Point an engine (and every table bound to it) at another database.

    Tables resolve their engine once, so tests and tools swap the DSN on the
    same engine object rather than building a new one. Close its pool first.
    """
    if engine.pool is not None:
        raise RuntimeError("close the engine's pool before retargeting it")
    engine.config = {"dsn": dsn}
