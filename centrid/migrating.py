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
CLI through `centrid.database.CentridEngine`. Different keys, so a process
holding the run lock never waits on itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

# An arbitrary constant naming "centrid migrations" among advisory locks.
MIGRATION_LOCK_KEY = 0x63656E7472696400 >> 8  # "centrid" in ASCII, fits in bigint
# ...and one for "a whole migrations run", held for the run's duration.
MIGRATION_RUN_LOCK_KEY = MIGRATION_LOCK_KEY + 1


async def acquire_run_lock(dsn: str) -> asyncpg.Connection:
    """A connection holding the session-level run lock; close it to release."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_RUN_LOCK_KEY)
    except BaseException:
        await conn.close()
        raise
    return conn


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
