"""Building a table as the code describes it, for real, in pg_temp.

The Piccolo half (columns, constraints, column indexes) comes from the
table class, as Piccolo's own DDL would create it; the security half is the
renderer's statements, exactly as a migration runs them, aimed at the
temporary copy. Same table name, so PostgreSQL derives the same constraint
and index names. The caller's transaction is always rolled back.
"""

from __future__ import annotations

import asyncpg
from piccolo.columns import Column
from piccolo.table import Table

from centrid.schema.difference import Difference, Kind
from centrid.schema.drift.shape import TEMP_TABLE_SQL, TableShape, read_shape
from centrid.schema.render import quote_ident, storage_statements, table_statements
from centrid.schema.security import TableSecurity



def is_serial(column: Column) -> bool:
    return type(column).__name__ in ("Serial", "BigSerial")


def _column_ddl(column: Column) -> str:
    """Piccolo's own column DDL (`Column.ddl`) without REFERENCES: a
    temporary table may not reference a permanent one (foreign keys are
    compared structurally instead)."""
    meta = column._meta
    sql = f"{quote_ident(meta.db_column_name)} {column.column_type}"
    if meta.primary_key:
        sql += " PRIMARY KEY"
    if meta.unique:
        sql += " UNIQUE"
    if not meta.null:
        sql += " NOT NULL"
    if not is_serial(column):
        sql += f" DEFAULT {column.get_sql_value(value=column.get_default_value())}"
    return sql


def expected_statements(table: type[Table], sec: TableSecurity | None) -> list[tuple[Kind, str, str]]:
    """(kind, name, SQL) building `table` as the code describes it, in pg_temp."""
    t = "pg_temp." + quote_ident(table._meta.tablename)
    columns = ", ".join(_column_ddl(c) for c in table._meta.columns)
    steps: list[tuple[Kind, str, str]] = [("table", "", f"CREATE TEMPORARY TABLE {t} ({columns})")]
    for constraint in table._meta.constraints:
        name = constraint._meta.name
        steps.append(("constraint", name, f"ALTER TABLE {t} ADD CONSTRAINT {quote_ident(name)} {constraint.ddl}"))
    for column in table._meta.columns:
        if column._meta.index:
            name = table._get_index_name([column._meta.db_column_name])
            method = column._meta.index_method.value
            steps.append(
                ("index", name, f"CREATE INDEX {quote_ident(name)} ON {t} USING {method} ({quote_ident(column._meta.db_column_name)})")
            )
    if sec is not None:
        # Foreign keys are compared structurally (compare_foreign_keys): a
        # temporary table may not reference a permanent one.
        steps.extend((s.kind, s.name, s.sql) for s in table_statements(sec, schema="pg_temp") if s.kind != "foreign key")
        steps.extend((s.kind, s.name, s.sql) for s in storage_statements(sec, schema="pg_temp"))
    return steps


async def build_expected(
    conn: asyncpg.Connection, table: type[Table], sec: TableSecurity | None, label: str
) -> tuple[TableShape | None, list[Difference]]:
    """The expected table's shape, and each declared statement PostgreSQL
    refused (a difference of its own; the rest is still built)."""
    problems: list[Difference] = []
    for kind, name, sql in expected_statements(table, sec):
        try:
            async with conn.transaction():  # a savepoint: one bad declaration spoils nothing else
                await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            problems.append(Difference(label, kind, name, "a declaration PostgreSQL accepts", f"error: {exc}"))
            if kind == "table":
                return None, problems
    oid = await conn.fetchval(TEMP_TABLE_SQL, table._meta.tablename)
    return await read_shape(conn, oid), problems
