"""Schema drift: the live database against the table classes and their security.

`find_drift` answers "does this database still match what the code says?"
for every table class of the centrid app and the `TableSecurity` declared
beside it: columns (type, nullability, default, generated tsvector columns,
the `auth.uid()` owner default, storage mode), storage parameters,
constraints, foreign keys, indexes, triggers, RLS, policies and grants; plus the internal tables (migration
ledger, admin login) that no API role may reach, and any table in `public`
that nothing declares. Per-owner vector indexes (centrid.schema.owner_indexes)
are data, not schema: accepted when they have the expected shape.

Inside a transaction that is always rolled back, each table is built as the
code describes it in the session's temporary schema: Piccolo's columns,
then the very statements a migration runs (centrid.schema.render), aimed at
the copy (`expected`). Both tables are read back through the same catalog
queries (`shape`) and compared (`compare`). Foreign keys are compared
structurally (a temporary table may not reference a permanent one). The
check never changes the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg
from piccolo.table import Table

from centrid.schema.difference import Difference, Kind
from centrid.schema.drift.compare import (
    compare_columns,
    compare_foreign_keys,
    compare_grants,
    compare_named,
    compare_options,
    compare_policies,
    compare_rls,
    grant_keys,
)
from centrid.schema.drift.expected import build_expected
from centrid.schema.drift.shape import LIVE_TABLE_SQL, PUBLIC_TABLES_SQL, CHECKED_GRANTEES, read_shape
from centrid.schema.owner_indexes import TABLE as OWNER_INDEXED_TABLE, is_owner_index
from centrid.schema.registry import declaration_problems
from centrid.schema.render import declared_extensions, internal_table_grants
from centrid.schema.security import Grant, TableSecurity, version_tuple

__all__ = ["Difference", "Kind", "declaration_problems", "find_drift", "internal_table_grants"]


async def find_drift(
    conn: asyncpg.Connection,
    table_classes: Sequence[type[Table]],
    declarations: Sequence[TableSecurity],
    *,
    other_tables: Iterable[str] = (),
    internal: Mapping[str, tuple[Grant, ...]] | None = None,
) -> list[Difference]:
    """Every difference between the database behind `conn` (connected as the
    owner role) and the code. Empty means they match.

    `other_tables`: tables of other Piccolo apps, expected in `public` but
    not compared. `internal`: tables no API role may reach, with the grants
    they should carry (default: `internal_table_grants()`).
    """
    internal = internal_table_grants() if internal is None else internal
    diffs = declaration_problems(table_classes, declarations)
    by_table = {sec.tablename: sec for sec in declarations}

    transaction = conn.transaction()
    await transaction.start()
    try:
        # Expected tables live in pg_temp but must not shadow the live ones
        # while declared expressions are parsed, so pg_temp goes last.
        # Extension types (vector) resolve as the migrations resolved them.
        from centrid.db.migrations import extension_search_path

        await extension_search_path(conn)
        await conn.execute(
            "SELECT set_config('search_path', concat_ws(', ', nullif(current_setting('search_path'), ''), 'pg_temp'), true)"
        )
        diffs += await _check_extensions(conn, declarations)
        for table in table_classes:
            diffs += await _check_table(conn, table, by_table.get(table._meta.tablename))
        for tablename, grants in internal.items():
            diffs += await _check_internal(conn, tablename, grants)
        known = {t._meta.tablename for t in table_classes if (t._meta.schema or "public") == "public"}
        known.update(internal)
        known.update(other_tables)
        for r in await conn.fetch(PUBLIC_TABLES_SQL):
            if r["relname"] not in known:
                diffs.append(Difference(r["relname"], "table", "", "no such table (no table class declares it)", "a table"))
    finally:
        await transaction.rollback()
    return diffs


async def _check_extensions(conn: asyncpg.Connection, declarations: Sequence[TableSecurity]) -> list[Difference]:
    diffs: list[Difference] = []
    for ext in declared_extensions(list(declarations)):
        installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = $1", ext.name)
        if installed is None:
            diffs.append(Difference("database", "extension", ext.name, f"installed, version >= {ext.min_version}", "none"))
        elif version_tuple(installed) < ext.min_version_tuple:
            diffs.append(
                Difference("database", "extension", ext.name, f"version >= {ext.min_version}", f"version {installed}")
            )
    return diffs


async def _check_table(conn: asyncpg.Connection, table: type[Table], sec: TableSecurity | None) -> list[Difference]:
    schema = table._meta.schema or "public"
    label = table._meta.tablename if schema == "public" else f"{schema}.{table._meta.tablename}"
    oid: int | None = await conn.fetchval(LIVE_TABLE_SQL, schema, table._meta.tablename)
    if oid is None:
        return [Difference(label, "table", "", "table", "none")]
    expected, diffs = await build_expected(conn, table, sec, label)
    if expected is None:
        return diffs
    live = await read_shape(conn, oid)
    diffs += compare_columns(label, table, expected, live)
    diffs += compare_named(label, "constraint", expected.constraints, live.constraints)
    diffs += await compare_foreign_keys(conn, label, table, oid, sec)
    diffs += compare_named(label, "index", expected.indexes, _declared_indexes(label, live.indexes))
    diffs += compare_options(label, expected, live)
    if sec is not None:
        diffs += compare_named(label, "trigger", expected.triggers, live.triggers)
        diffs += compare_rls(label, expected, live)
        diffs += compare_policies(label, expected, live)
        diffs += compare_grants(label, expected.grants, live.grants)
    return diffs


def _declared_indexes(label: str, live: Mapping[str, str]) -> dict[str, str]:
    """The live indexes less the per-owner vector indexes, which are data, not
    schema (centrid.schema.owner_indexes); one of them that is invalid or
    not of the expected shape stays in, so it is reported."""
    if label != OWNER_INDEXED_TABLE:
        return dict(live)
    return {name: text for name, text in live.items() if not is_owner_index(name, text)}


async def _check_internal(conn: asyncpg.Connection, tablename: str, grants: tuple[Grant, ...]) -> list[Difference]:
    oid: int | None = await conn.fetchval(LIVE_TABLE_SQL, "public", tablename)
    if oid is None:
        return [Difference(tablename, "table", "", "table", "none")]
    live = await read_shape(conn, oid)
    diffs = compare_rls(tablename, None, live)
    diffs += compare_named(tablename, "policy", {}, {n: p.describe() for n, p in live.policies.items()})
    expected = {key for key in grant_keys(grants) if key[1] in CHECKED_GRANTEES}
    diffs += compare_grants(tablename, expected, live.grants)
    return diffs
