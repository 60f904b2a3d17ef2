"""Security planning: what the next migration must do to the database's security.

Every security migration carries SECURITY_SNAPSHOT, the rendered
(forwards, backwards) SQL of every declared table (and extension) once it
has run. `plan_security` diffs the latest snapshot against what the current
declarations render to (centrid.schema.render): a new table gets its
forwards SQL; a changed one its old backwards SQL (from the snapshot, as
the old declaration no longer exists) then its new forwards SQL; a removed
one its old backwards SQL. Pure text in, text out: `piccolo centrid
new_migration` decides where the files go and writes them.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from centrid.schema.render import (
    EXTENSION_KEY_PREFIX,
    SHARED_FUNCTIONS_BACKWARDS_SQL,
    SHARED_FUNCTIONS_SQL,
    STORAGE_KEY_PREFIX,
    declared_extensions,
    extension_backwards_sql,
    extension_forwards_sql,
    extension_key,
    internal_tables_backwards_sql,
    internal_tables_forwards_sql,
    storage_backwards_sql,
    storage_forwards_sql,
    storage_key,
    table_backwards_sql,
    table_forwards_sql,
)
from centrid.schema.security import TableSecurity

SNAPSHOT_NAME = "SECURITY_SNAPSHOT"

# tablename (or extension key) -> (forwards SQL, backwards SQL), in declaration order.
Snapshot = dict[str, tuple[str, str]]


def render_snapshot(declarations: Sequence[TableSecurity]) -> Snapshot:
    """What the current declarations render to: extensions, then table by
    table, each followed by its storage (an entry of its own, so a change
    to it plans an ALTER and leaves the table's security alone)."""
    snapshot: Snapshot = {
        extension_key(ext): (extension_forwards_sql(ext), extension_backwards_sql(ext))
        for ext in declared_extensions(list(declarations))
    }
    for sec in declarations:
        snapshot[sec.tablename] = (table_forwards_sql(sec), table_backwards_sql(sec))
        if sec.storage is not None:
            snapshot[storage_key(sec)] = (storage_forwards_sql(sec), storage_backwards_sql(sec))
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


def latest_snapshot(directory: Path) -> tuple[Path | None, Snapshot]:
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
    # A table's changed security is dropped and rebuilt, its generated
    # columns with it, and a rebuilt column has its type's storage again:
    # its storage entry runs again after it (idempotent ALTERs).
    for table in [*plan.added, *plan.changed]:
        key = STORAGE_KEY_PREFIX + table
        if key in current and key not in plan.added and key not in plan.changed:
            plan.changed.append(key)
    return plan


def join_sql(parts: Sequence[str]) -> str:
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
    return join_sql(forwards), join_sql(backwards)


def removal_sql(plan: SecurityPlan) -> tuple[str, str]:
    """(forwards, backwards) taking the removed tables' security off."""
    forwards = [f"-- {t}: removed\n" + plan.previous[t][1] for t in plan.removed]
    backwards = [f"-- {t}: removed\n" + plan.previous[t][0] for t in reversed(plan.removed)]
    return join_sql(forwards), join_sql(backwards)
