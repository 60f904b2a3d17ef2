"""`piccolo centrid new_migration`: the one command that writes a migration.

1. Refuses to write anything while a table class has no TableSecurity
   declaration in the registry (centrid.schema.tables.SECURITY), whether
   registered with the app by hand or written in centrid/schema/tables/
   and left out (centrid.schema.registry).
2. Writes Piccolo's auto migration for the centrid app (what
   `piccolo migrations new centrid --auto` would write), under
   SerializedMigrationManager (centrid.db.migration_files).
3. Writes a security migration for the tables whose declarations changed,
   as planned by centrid.schema.plan. Every security migration carries SECURITY_SNAPSHOT, the rendered
   (forwards, backwards) SQL of every declared table at the time it was
   written. The latest snapshot is diffed against the current declarations:
   a new table gets its forwards SQL; a changed table gets its old
   backwards SQL (from the snapshot, as the old declaration no longer
   exists) then its new forwards SQL. A table whose class was removed gets
   its old backwards SQL in a migration placed just *before* the auto
   migration that drops it, so both directions run against a table that
   exists.
4. Extensions a declaration needs (pgvector) get a migration of their own,
   placed just *before* the auto migration, whose columns need their types.
   They are in the snapshot as "extension:<name>" entries.

Nothing changed: says so and writes nothing. See docs/ADDING_A_TABLE.md.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

from piccolo.conf.apps import AppConfig

from centrid.db.migration_files import write_auto_migration, write_sql_migration
from centrid.db.piccolo_adapter import id_time
from centrid.schema.plan import (
    apply_sql,
    is_extension_key,
    join_sql,
    latest_snapshot,
    plan_security,
    read_snapshot,
    removal_sql,
    render_snapshot,
)
from centrid.schema.render import EXTENSION_KEY_PREFIX, STORAGE_KEY_PREFIX
from centrid.schema.security import TableSecurity

# --------------------------------------------------------------------------
# The command.


def _entry_name(key: str) -> str:
    """A snapshot entry as a migration's description names it."""
    if key.startswith(STORAGE_KEY_PREFIX):
        return f"{key[len(STORAGE_KEY_PREFIX):]} storage"
    return key


def _id_time(path: Path) -> datetime.datetime:
    migration_id, _ = read_snapshot(path)
    return id_time(migration_id)


async def new_migration(desc: str = "", auto_input: str = "") -> None:
    """Write the migrations for what changed in the table classes and their
    security declarations: Piccolo's auto migration (made serialized) and a
    security migration for new or changed declarations.

    :param desc:
        A description for the auto migration.
    :param auto_input:
        Answer Piccolo's questions (e.g. "was this column renamed?") with
        this, e.g. --auto_input=y.
    """
    from piccolo.conf.apps import Finder

    from centrid.schema.registry import declaration_problems, unregistered_tables
    from centrid.schema.tables import SECURITY

    app_config = Finder().get_app_config("centrid")
    classes = [*app_config.table_classes, *unregistered_tables(app_config.table_classes)]
    problems = declaration_problems(classes, SECURITY)
    if problems:
        for problem in problems:
            print(problem)
        print("Nothing written: every table class needs its TableSecurity, listed in SECURITY (centrid/schema/tables/__init__.py).")
        sys.exit(1)
    await write_migrations(app_config, SECURITY, desc=desc, auto_input=auto_input or None)


async def write_migrations(
    app_config: AppConfig, declarations: Sequence[TableSecurity], *, desc: str, auto_input: str | None
) -> None:
    """The migrations for `app_config`'s table classes and `declarations`
    against what its migrations folder already builds; apart from the
    command so that its branches can be tested without a database."""
    directory = Path(app_config.resolved_migrations_folder_path)
    previous_path, previous = latest_snapshot(directory)
    plan = plan_security(previous, render_snapshot(declarations))
    started = datetime.datetime.now()

    auto_path = await write_auto_migration(app_config, description=desc, auto_input=auto_input)
    if auto_path is not None:
        print(f"Auto migration (serialized): {auto_path}")
    else:
        print("Table classes: no changes.")

    one_microsecond = datetime.timedelta(microseconds=1)
    extensions = [k for k in plan.added + plan.changed if is_extension_key(k)]
    if extensions:
        plan.added = [k for k in plan.added if k not in extensions]
        plan.changed = [k for k in plan.changed if k not in extensions]
        base = _id_time(auto_path) if auto_path is not None else started
        when = min(started, base) - 2 * one_microsecond
        pre_snapshot = {k: plan.current[k] for k in extensions}
        pre_snapshot.update({k: v for k, v in previous.items() if k not in pre_snapshot})
        path = write_sql_migration(
            join_sql([plan.current[k][0] for k in extensions]),
            join_sql([plan.current[k][1] for k in reversed(extensions)]),
            pre_snapshot,
            description="extensions: " + ", ".join(k[len(EXTENSION_KEY_PREFIX):] for k in extensions),
            directory=directory,
            now=when,
        )
        print(f"Extension migration (runs before the auto migration): {path}")
    if plan.removed and auto_path is not None:
        # Before the auto migration that drops them (IDs order migrations).
        before = min(started, _id_time(auto_path) - one_microsecond)
        pre_snapshot = {t: sql for t, sql in previous.items() if t not in plan.removed}
        forwards, backwards = removal_sql(plan)
        path = write_sql_migration(
            forwards,
            backwards,
            pre_snapshot,
            description="security removed: " + ", ".join(plan.removed),
            directory=directory,
            now=before,
        )
        print(f"Security migration (removed tables, runs before the auto migration): {path}")
    include_removed = auto_path is None
    if plan.added or plan.changed or (plan.removed and include_removed):
        after = datetime.datetime.now()
        if auto_path is not None:
            after = max(after, _id_time(auto_path) + one_microsecond)
        groups = (("new", plan.added), ("changed", plan.changed), ("removed", plan.removed if include_removed else []))
        parts = [f"{label} {', '.join(_entry_name(t) for t in tables)}" for label, tables in groups if tables]
        forwards, backwards = apply_sql(plan, include_removed=include_removed, shared=previous_path is None)
        path = write_sql_migration(
            forwards,
            backwards,
            plan.current,
            description="security: " + "; ".join(parts),
            directory=directory,
            now=after,
        )
        print(f"Security migration ({'; '.join(parts)}): {path}")
    elif plan.empty and not extensions:
        print("Security declarations: no changes.")
    if auto_path is None and plan.empty and not extensions:
        print("Nothing changed; no migration written.")
