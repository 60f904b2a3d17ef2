"""The asyncpg pool behind Piccolo's engine, opened for request traffic.

Its connections log in as the request login (centrid.db.engine.request_dsn:
by default `centrid_authenticator`, which owns nothing and bypasses nothing)
and start as `anon` (startup parameter `role`), so a query that escapes a
request scope sees no user rows. On release we also RESET ROLE, which returns
to that startup role, in case anything changed it at session level
(asyncpg's default RESET ALL leaves the role alone).

Behind PgBouncer in transaction mode the `role` startup parameter is dropped
(it must be in ignore_startup_parameters); centrid_authenticator's role-level
default (`ALTER ROLE ... SET role = 'anon'`) still starts it as anon, and the
login owns nothing anyway. Set statement_cache_size to 0 there
(CENTRID_STATEMENT_CACHE_SIZE).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine

from centrid.config import Settings
from centrid.db.engine import request_dsn
from centrid.schema.roles import ANON

_RESET_SQL = """
SELECT pg_advisory_unlock_all();
CLOSE ALL;
UNLISTEN *;
RESET ALL;
RESET ROLE;
"""


# The same reset, run as the last statements of a request's transaction and
# committed with it (SET/RESET inside a transaction persist when it commits),
# so the request pays one round trip for COMMIT and reset instead of two.
# Ends with COMMIT, so the message's status is COMMIT's own: "ROLLBACK" if the
# transaction had failed (the RESETs then raise first: "current transaction
# is aborted").
COMMIT_AND_RESET_SQL = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; RESET ROLE; COMMIT"


class ScopedConnection(asyncpg.Connection):
    """A pool connection that can say it was already reset by its request."""

    reset_done = False

    def mark_reset(self) -> None:
        self.reset_done = True


def mark_reset(conn: Any) -> None:
    """The request committed COMMIT_AND_RESET_SQL: skip the pool's next reset.
    `conn` may be the pool's proxy, which forwards the call to the connection."""
    conn.mark_reset()


async def _reset(conn: asyncpg.Connection) -> None:
    if getattr(conn, "reset_done", False):
        conn.reset_done = False  # type: ignore[attr-defined]
        return
    await conn.execute(_RESET_SQL)


async def open_pool(engine: PostgresEngine, cfg: Settings) -> str:
    """Open the request pool; returns the DSN it logs in with."""
    dsn = request_dsn(cfg, engine.config["dsn"])
    await engine.start_connection_pool(
        dsn=dsn,
        min_size=cfg.pool_min_size,
        max_size=cfg.pool_max_size,
        server_settings={"role": ANON, "application_name": "centrid"},
        reset=_reset,
        command_timeout=None,
        statement_cache_size=cfg.statement_cache_size,
        connection_class=ScopedConnection,
    )
    return dsn


async def close_pool(engine: PostgresEngine) -> None:
    if engine.pool is not None:
        await engine.close_connection_pool()


async def login_risk(engine: PostgresEngine) -> str | None:
    """Why the request login could escape its scope, if it could."""
    assert engine.pool is not None
    async with engine.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT session_user AS login, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = session_user"
        )
    if row is None:
        return None
    if row["rolsuper"] or row["rolbypassrls"]:
        return (
            f"request connections log in as {row['login']!r}, which is a superuser or bypasses RLS: "
            "SQL run in a request could leave its scope. Set CENTRID_REQUEST_DATABASE_URL to a "
            "NOINHERIT login such as centrid_authenticator."
        )
    return None
