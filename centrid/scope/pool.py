"""The asyncpg pool behind Piccolo's engine, opened for request traffic.

Its connections start as `anon` (startup parameter `role`), so a query that
escapes a request scope sees no user rows. On release we also RESET ROLE,
which returns to that startup role, in case anything changed it at session
level (asyncpg's default RESET ALL leaves the role alone).
"""

from __future__ import annotations

import asyncpg
from piccolo.engine.postgres import PostgresEngine

from centrid.config import Settings

_RESET_SQL = """
SELECT pg_advisory_unlock_all();
CLOSE ALL;
UNLISTEN *;
RESET ALL;
RESET ROLE;
"""


async def _reset(conn: asyncpg.Connection) -> None:
    await conn.execute(_RESET_SQL)


async def open_pool(engine: PostgresEngine, cfg: Settings) -> None:
    await engine.start_connection_pool(
        min_size=cfg.pool_min_size,
        max_size=cfg.pool_max_size,
        server_settings={"role": "anon", "application_name": "centrid"},
        reset=_reset,
        command_timeout=None,
    )


async def close_pool(engine: PostgresEngine) -> None:
    if engine.pool is not None:
        await engine.close_connection_pool()
