"""Migrations at server start: `piccolo migrations forwards all`, in process.

What ran is read from Piccolo's own records (its `migration` table) before
and after the run, under the run lock, so the log names exactly the
migrations this process applied; Piccolo's printed progress is not parsed.
"""

from __future__ import annotations

import contextlib
import io
import logging

from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.conf.apps import Finder

from centrid.db.engine import configured_engine
from centrid.db.migrations import migration_run_lock

log = logging.getLogger("centrid.server")


async def recorded_migrations() -> list[tuple[str, str]]:
    """(app, migration ID) of every migration the database records as run,
    in the order they ran; none before Piccolo has made its table."""
    if not await Migration.table_exists().run():
        return []
    rows = await Migration.select(Migration.app_name, Migration.name).order_by(Migration._meta.primary_key).run()
    return [(row["app_name"], row["name"]) for row in rows]


async def apply_migrations() -> None:
    """Serialized across replicas by the migrations' advisory locks. Runs
    before the request pool exists, so it uses the DSN's own (owner) role."""
    async with migration_run_lock(configured_engine().config["dsn"]):
        before = set(await recorded_migrations())
        # Piccolo prints its progress; what ran is logged from its records.
        with contextlib.redirect_stdout(io.StringIO()):
            result = await run_forwards("all")
        applied = [name for app, name in await recorded_migrations() if (app, name) not in before]
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
    files = BaseMigrationManager()
    unknown: list[str] = []
    for app_config in Finder().get_app_configs():
        known = set(files.get_migration_modules(app_config.resolved_migrations_folder_path))
        recorded = await Migration.get_migrations_which_ran(app_name=app_config.app_name)
        unknown += [f"{app_config.app_name}:{mid}" for mid in recorded if mid not in known]
    return unknown
