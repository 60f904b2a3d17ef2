"""`piccolo centrid new_migration`: the one command that writes a migration.

1. Refuses to write anything while a registered table class has no
   TableSecurity declaration (or a declaration has no registered class).
2. Writes Piccolo's auto migration for the centrid app (what
   `piccolo migrations new centrid --auto` would write), under
   SerializedMigrationManager (centrid.db.migration_files).
3. Writes a security migration for the tables whose declarations changed.
   Every security migration carries SECURITY_SNAPSHOT, the rendered
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

import ast
import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from piccolo.conf.apps import AppConfig

from centrid.db.migration_files import write_auto_migration, write_sql_migration
from centrid.db.piccolo_adapter import id_time
from centrid.schema.security import TableSecurity
from centrid.schema.render import (
    EXTENSION_KEY_PREFIX,
    SHARED_FUNCTIONS_BACKWARDS_SQL,
    SHARED_FUNCTIONS_SQL,
    declared_extensions,
    extension_backwards_sql,
    extension_forwards_sql,
    extension_key,
    internal_tables_backwards_sql,
    internal_tables_forwards_sql,
    table_backwards_sql,
    table_forwards_sql,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "piccolo_migrations"

SNAPSHOT_NAME = "SECURITY_SNAPSHOT"

# tablename -> (forwards SQL, backwards SQL), in declaration order.
Snapshot = dict[str, tuple[str, str]]


# --------------------------------------------------------------------------
# Snapshots.


def render_snapshot(declarations: Sequence[TableSecurity]) -> Snapshot:
    """What the current declarations render to: extensions, then table by table."""
    snapshot: Snapshot = {
        extension_key(ext): (extension_forwards_sql(ext), extension_backwards_sql(ext))
        for ext in declared_extensions(list(declarations))
    }
    snapshot.update({sec.tablename: (table_forwards_sql(sec), table_backwards_sql(sec)) for sec in declarations})
    return snapshot


def is_extension_key(key: str) -> bool:
    return key.startswith(EXTENSION_KEY_PREFIX)


def _module_constants(path: Path) -> dict[str, ast.expr]:
    tree = ast.parse(path.read_text(), filename=str(path))
    constants: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            constants[node.target.id] = node.value
    return constants


def read_snapshot(path: Path) -> tuple[str, Snapshot | None]:
    """(migration ID, its SECURITY_SNAPSHOT or None), read without importing."""
    constants = _module_constants(path)
    id_node = constants.get("ID")
    migration_id = ast.literal_eval(id_node) if id_node is not None else ""
    if not isinstance(migration_id, str):
        raise ValueError(f"{path}: ID is not a string")
    node = constants.get(SNAPSHOT_NAME)
    if node is None:
        return migration_id, None
    value = ast.literal_eval(node)
    snapshot: Snapshot = {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {SNAPSHOT_NAME} is not a dict")
    for table, sql in value.items():
        if not (
            isinstance(table, str)
            and isinstance(sql, tuple)
            and len(sql) == 2
            and isinstance(sql[0], str)
            and isinstance(sql[1], str)
        ):
            raise ValueError(f"{path}: {SNAPSHOT_NAME}[{table!r}] is not (forwards, backwards) SQL")
        snapshot[table] = (sql[0], sql[1])
    return migration_id, snapshot


def latest_snapshot(directory: Path = MIGRATIONS_DIR) -> tuple[Path | None, Snapshot]:
    """The snapshot of the latest migration (by ID, as Piccolo orders them)
    that carries one; (None, {}) when none does yet."""
    found: list[tuple[str, Path, Snapshot]] = []
    for path in directory.glob("*.py"):
        if path.name == "__init__.py":
            continue
        migration_id, snapshot = read_snapshot(path)
        if snapshot is not None:
            found.append((migration_id, path, snapshot))
    if not found:
        return None, {}
    _, path, snapshot = max(found, key=lambda item: item[0])
    return path, snapshot


@dataclass
class SecurityPlan:
    """How the current declarations differ from the latest snapshot."""

    previous: Snapshot
    current: Snapshot
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def plan_security(previous: Snapshot, current: Snapshot) -> SecurityPlan:
    plan = SecurityPlan(previous=previous, current=current)
    for table, sql in current.items():
        if table not in previous:
            plan.added.append(table)
        elif previous[table] != sql:
            plan.changed.append(table)
    plan.removed = [t for t in previous if t not in current and not is_extension_key(t)]
    return plan


def _join(parts: Sequence[str]) -> str:
    return "\n\n".join(parts) + "\n"


def apply_sql(plan: SecurityPlan, *, include_removed: bool, shared: bool = False) -> tuple[str, str]:
    """(forwards, backwards) for the new and changed tables (and, with
    `include_removed`, the removed ones): old backwards SQL before new
    forwards SQL; backwards undoes it in reverse."""
    forwards: list[str] = []
    backwards: list[str] = []
    if shared:
        forwards.append(SHARED_FUNCTIONS_SQL.strip())
    if include_removed:
        for table in plan.removed:
            old_forwards, old_backwards = plan.previous[table]
            forwards.append(f"-- {table}: removed\n" + old_backwards)
            backwards.insert(0, f"-- {table}: removed\n" + old_forwards)
    for table in plan.current:
        new_forwards, new_backwards = plan.current[table]
        if table in plan.added:
            forwards.append(new_forwards)
            backwards.insert(0, new_backwards)
        elif table in plan.changed:
            old_forwards, old_backwards = plan.previous[table]
            forwards.append(f"-- {table}: changed, previous security first\n{old_backwards}\n{new_forwards}")
            backwards.insert(0, f"-- {table}: changed, current security first\n{new_backwards}\n{old_forwards}")
    if shared:
        forwards.append(internal_tables_forwards_sql())
        backwards.insert(0, internal_tables_backwards_sql())
        backwards.append(SHARED_FUNCTIONS_BACKWARDS_SQL.strip())
    return _join(forwards), _join(backwards)


def removal_sql(plan: SecurityPlan) -> tuple[str, str]:
    """(forwards, backwards) taking the removed tables' security off."""
    forwards = [f"-- {t}: removed\n" + plan.previous[t][1] for t in plan.removed]
    backwards = [f"-- {t}: removed\n" + plan.previous[t][0] for t in reversed(plan.removed)]
    return _join(forwards), _join(backwards)


# --------------------------------------------------------------------------
# The command.


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

    from centrid.schema.drift import declaration_problems
    from centrid.schema.tables import SECURITY

    app_config = Finder().get_app_config("centrid")
    problems = declaration_problems(app_config.table_classes, SECURITY)
    if problems:
        for problem in problems:
            print(problem)
        print("Nothing written: every table class needs its TableSecurity, registered in centrid/schema/tables/__init__.py.")
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
            _join([plan.current[k][0] for k in extensions]),
            _join([plan.current[k][1] for k in reversed(extensions)]),
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
        parts = [f"{label} {', '.join(tables)}" for label, tables in groups if tables]
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
