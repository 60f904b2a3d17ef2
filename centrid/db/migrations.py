"""Migrations that are safe when several processes run them at once.

Piccolo runs each migration in a transaction but records it afterwards, in
a statement of its own, and decides what to run before taking any lock. Two
replicas starting together would then both apply the same migration. Every
centrid migration therefore uses `SerializedMigrationManager`, which, inside
the migration's own transaction, takes an advisory lock, re-reads the
migration table, skips a migration another process already applied, and
writes the record in the same transaction: a migration and its record commit
or vanish together. Piccolo's own later insert of the record is dropped as a
duplicate by the `centrid_migration_dedup` trigger the first migration adds.

That covers centrid's migrations. Piccolo's own steps before them (creating
its `migration` table, the user and session_auth apps' migrations) are not
serialized by Piccolo at all, so a whole run takes `migration_run_lock` too:
the server around its in-process `forwards`, and the `piccolo migrations`
CLI through `centrid.db.engine.CentridEngine`. Different keys, so a process
holding the run lock never waits on itself.

Taking the run lock for a forwards run also runs the preflight: every
extension the declarations need (pgvector 0.8+) must be installed or
installable at that version, else the run stops before anything, Piccolo's
own migration table included, is created. And every centrid migration runs
with the schemas of the installed extensions on its search_path (SET
LOCAL), so `vector(384)` and `vector_cosine_ops` resolve wherever the
extension lives (`extensions` on Supabase, elsewhere on other databases).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sys

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

# An arbitrary constant naming "centrid migrations" among advisory locks.
MIGRATION_LOCK_KEY = 0x63656E7472696400 >> 8  # "centrid" in ASCII, fits in bigint
# ...and one for "a whole migrations run", held for the run's duration.
MIGRATION_RUN_LOCK_KEY = MIGRATION_LOCK_KEY + 1


class MissingExtension(SystemExit):
    """The database cannot have an extension the schema needs. A SystemExit
    so the `piccolo migrations` CLI prints the message and exits 1 without
    a traceback; the server's start fails with the same message."""


_EXTENSION_STATE_SQL = """
SELECT (SELECT extversion FROM pg_extension WHERE extname = $1) AS installed,
       ARRAY(SELECT version FROM pg_available_extension_versions WHERE name = $1) AS available
"""


async def preflight(conn: asyncpg.Connection) -> None:
    """Stop, before anything changes, when a required extension is missing
    or too old and no good-enough version can be installed."""
    from centrid.schema.security import version_tuple
    from centrid.schema.render import declared_extensions
    from centrid.schema.tables import SECURITY

    for ext in declared_extensions(SECURITY):
        row = await conn.fetchrow(_EXTENSION_STATE_SQL, ext.name)
        assert row is not None  # one row, always
        installed: str | None = row["installed"]
        available: list[str] = list(row["available"])
        need = ext.min_version_tuple
        if installed is not None and version_tuple(installed) >= need:
            continue
        best = max(available, key=version_tuple, default=None)
        if installed is None and best is not None and version_tuple(best) >= need:
            continue  # the extension migration creates it
        if installed is not None:
            found = f"version {installed} is installed" + (
                f" and {best} is available: run ALTER EXTENSION {ext.name} UPDATE"
                if best is not None and version_tuple(best) >= need
                else ""
            )
        elif best is not None:
            found = f"only version {best} is available on the server"
        else:
            found = "it is not available on the server"
        raise MissingExtension(
            f"centrid needs the PostgreSQL extension '{ext.name}' {ext.min_version} or newer, but {found}. "
            f"To get it: {ext.hint}. No migration was run; nothing was changed."
        )


def _is_backwards_run() -> bool:
    return "backwards" in sys.argv[1:3]


async def acquire_run_lock(dsn: str, *, forwards: bool | None = None) -> asyncpg.Connection:
    """A connection holding the session-level run lock; close it to release.

    For a forwards run (by default: unless this is `piccolo migrations
    backwards`) the preflight runs under the lock, before anything else.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_RUN_LOCK_KEY)
        if forwards if forwards is not None else not _is_backwards_run():
            await preflight(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


_EXTENSION_SEARCH_PATH_SQL = """
SELECT set_config('search_path', concat_ws(', ', nullif(current_setting('search_path'), ''), extra), true)
FROM (
    SELECT string_agg(DISTINCT quote_ident(n.nspname), ', ') AS extra
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE n.nspname <> ALL (current_schemas(true))
) s
WHERE extra IS NOT NULL
"""


async def extension_search_path(conn: asyncpg.Connection) -> None:
    """Put the installed extensions' schemas on this transaction's search_path."""
    await conn.execute(_EXTENSION_SEARCH_PATH_SQL)


@asynccontextmanager
async def migration_run_lock(dsn: str) -> AsyncIterator[None]:
    conn = await acquire_run_lock(dsn)
    try:
        yield
    finally:
        await conn.close()


class SerializedMigrationManager(MigrationManager):
    async def run(self, backwards: bool = False) -> None:
        engine: Any = engine_finder()
        if engine is None:
            raise RuntimeError("no Piccolo engine configured")
        if self.preview:
            await super().run(backwards=backwards)
            return
        async with engine.transaction() as txn:
            conn = txn.connection
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            recorded = await conn.fetchval(
                "SELECT count(*) FROM migration WHERE app_name = $1 AND name = $2",
                self.app_name,
                self.migration_id,
            )
            if (recorded > 0) != backwards:
                print(f"  - {self.migration_id}: already done by another process, ", end="")
                return
            await extension_search_path(conn)
            # Piccolo's own transaction nests into ours (a no-op join).
            await super().run(backwards=backwards)
            if backwards:
                await conn.execute(
                    "DELETE FROM migration WHERE app_name = $1 AND name = $2", self.app_name, self.migration_id
                )
            else:
                await conn.execute(
                    "INSERT INTO migration (name, app_name, ran_on) VALUES ($1, $2, now())",
                    self.migration_id,
                    self.app_name,
                )


def sql_step(sql: str) -> Any:
    """A raw migration step running `sql` (may hold several statements) in
    the migration's transaction."""

    async def step() -> None:
        engine: Any = engine_finder()
        txn = engine.current_transaction.get()
        if txn is None:
            raise RuntimeError("raw migration SQL must run inside the migration transaction")
        await txn.connection.execute(sql)

    return step
