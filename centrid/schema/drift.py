"""Schema drift: the live database against the table classes and their security.

`find_drift` answers "does this database still match what the code says?"
for every table class of the centrid app and the `TableSecurity` declared
beside it: columns (type, nullability, default, generated tsvector columns,
the `auth.uid()` owner default), constraints, foreign keys, indexes,
triggers, RLS, policies and grants; plus the internal tables (migration
ledger, admin login) that no API role may reach, and any table in `public`
that nothing declares.

Nothing is compared by string-munging SQL. Inside a transaction that is
always rolled back, the expected shape of each table is built for real in
the session's temporary schema (same table name, so PostgreSQL derives the
same constraint names), from the same Piccolo column definitions and
declarations the migrations use. Both tables are then read back through the
same catalog queries (`format_type`, `pg_get_expr`, `pg_get_constraintdef`,
`pg_get_indexdef`), so PostgreSQL normalises the expected text exactly as it
normalised the live one. Grants, foreign keys and triggers are compared
structurally. The check never changes the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg
from piccolo.columns import Column, ForeignKey
from piccolo.table import Table

from centrid.schema.security import ADMIN_ROLE, ALL_ROLES, Grant, Policy, Privilege, TableSecurity
from centrid.schema.security import version_tuple
from centrid.schema.render import ADMIN_LOGIN_TABLES, INTERNAL_TABLES, declared_extensions

# Grantees whose privileges are compared exactly: a missing grant and an
# extra grant are both differences. Other roles (the owner) are not ours.
CHECKED_GRANTEES: tuple[str, ...] = ("PUBLIC", *ALL_ROLES)

# The trigger TableSecurity(touch_updated_at=True) asks for.
TOUCH_FUNCTION = "public.centrid_touch_updated_at"

Kind = Literal[
    "declaration",
    "table",
    "column",
    "constraint",
    "foreign key",
    "index",
    "trigger",
    "rls",
    "policy",
    "grant",
    "extension",
]


@dataclass(frozen=True)
class Difference:
    """One way the live database differs from the code."""

    table: str
    kind: Kind
    # The column, constraint, index, trigger, policy or grant concerned;
    # empty when the difference is about the table itself.
    name: str
    expected: str
    found: str

    def __str__(self) -> str:
        if self.kind == "column":
            where = f"{self.table}.{self.name}"  # table.column: ...
        elif self.kind in ("table", "declaration"):
            where = self.table  # table: ...
        else:
            where = f"{self.table}: {self.kind}" + (f" {self.name}" if self.name else "")  # table: policy x: ...
        return f"{where}: expected {self.expected}, found {self.found}"


# --------------------------------------------------------------------------
# Reading a table's shape from the catalogs (the same queries for the live
# table and for the expected one built in pg_temp).

_COLUMNS_SQL = """
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS notnull,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       a.attgenerated::text AS generated,
       a.attidentity::text AS identity
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# Foreign keys are compared structurally (the expected table cannot carry
# them: a temporary table may not reference a permanent one); NOT NULL
# (a constraint of its own from PostgreSQL 18) with the columns.
_CONSTRAINTS_SQL = """
SELECT conname AS name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE conrelid = $1 AND contype IN ('c', 'u', 'p', 'x')
"""

_FOREIGN_KEYS_SQL = """
SELECT c.conname AS name,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord) AS columns,
       rn.nspname AS ref_schema,
       rc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.ord) AS ref_columns,
       c.confdeltype::text AS on_delete,
       c.confupdtype::text AS on_update,
       c.convalidated AS validated
FROM pg_constraint c
JOIN pg_class rc ON rc.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE c.conrelid = $1 AND c.contype = 'f'
"""

# Indexes that back a primary key, unique or exclusion constraint are
# covered by the constraint comparison.
_INDEXES_SQL = """
SELECT ic.relname AS name,
       i.indisunique AS is_unique,
       i.indisvalid AS valid,
       substring(pg_get_indexdef(i.indexrelid) FROM ' USING (.*)$') AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint c
      WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
"""

_TRIGGERS_SQL = """
SELECT t.tgname AS name, t.tgtype AS type, t.tgenabled::text AS enabled,
       n.nspname || '.' || p.proname AS function
FROM pg_trigger t
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE t.tgrelid = $1 AND NOT t.tgisinternal
"""

_POLICIES_SQL = """
SELECT p.polname AS name,
       p.polcmd::text AS command,
       p.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
             FROM unnest(p.polroles) r ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_policy p
WHERE p.polrelid = $1
"""

_GRANTS_SQL = """
SELECT NULL::text AS column_name,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END AS grantee,
       x.privilege_type AS privilege,
       x.is_grantable AS grantable
FROM pg_class c, aclexplode(c.relacl) x
WHERE c.oid = $1
UNION ALL
SELECT a.attname::text,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END,
       x.privilege_type,
       x.is_grantable
FROM pg_attribute a, aclexplode(a.attacl) x
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
"""

_LIVE_TABLE_SQL = """
SELECT c.oid, c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""

_TEMP_TABLE_SQL = """
SELECT c.oid FROM pg_class c
WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = $1 AND c.relkind = 'r'
"""

_PUBLIC_TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


@dataclass(frozen=True)
class ColumnShape:
    type: str
    notnull: bool
    default: str | None
    generated: bool
    identity: str

    def describe(self) -> str:
        text = self.type + (" not null" if self.notnull else " null")
        if self.generated:
            text += f" generated always as ({self.default}) stored"
        elif self.default is not None:
            text += f" default {self.default}"
        if self.identity:
            text += " identity"
        return text


@dataclass(frozen=True)
class PolicyShape:
    command: str
    permissive: bool
    roles: tuple[str, ...]
    using: str | None
    with_check: str | None

    def describe(self) -> str:
        text = f"{'PERMISSIVE' if self.permissive else 'RESTRICTIVE'} FOR {self.command} TO {', '.join(self.roles)}"
        if self.using is not None:
            text += f" USING ({_one_line(self.using)})"
        if self.with_check is not None:
            text += f" WITH CHECK ({_one_line(self.with_check)})"
        return text


@dataclass(frozen=True)
class TableShape:
    columns: dict[str, ColumnShape]
    constraints: dict[str, str]
    indexes: dict[str, str]
    policies: dict[str, PolicyShape]


def _one_line(sql: str) -> str:
    """PostgreSQL's deparsed expressions span lines; a difference is one line."""
    return " ".join(sql.split())


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _read_shape(conn: asyncpg.Connection, oid: int) -> TableShape:
    columns = {
        r["name"]: ColumnShape(
            type=r["type"],
            notnull=r["notnull"],
            default=r["default_expr"],
            generated=r["generated"] != "",
            identity=r["identity"],
        )
        for r in await conn.fetch(_COLUMNS_SQL, oid)
    }
    constraints = {r["name"]: r["definition"] for r in await conn.fetch(_CONSTRAINTS_SQL, oid)}
    indexes: dict[str, str] = {}
    for r in await conn.fetch(_INDEXES_SQL, oid):
        text = ("UNIQUE " if r["is_unique"] else "") + str(r["definition"])
        indexes[r["name"]] = text if r["valid"] else text + " (INVALID)"
    policies = {
        r["name"]: PolicyShape(
            command=_POLICY_COMMANDS.get(r["command"], r["command"]),
            permissive=r["permissive"],
            roles=tuple(r["roles"]),
            using=r["using_expr"],
            with_check=r["check_expr"],
        )
        for r in await conn.fetch(_POLICIES_SQL, oid)
    }
    return TableShape(columns=columns, constraints=constraints, indexes=indexes, policies=policies)


# --------------------------------------------------------------------------
# Building the expected table in pg_temp.


def _column_ddl(column: Column) -> str:
    """Piccolo's own column DDL (`Column.ddl`) without REFERENCES."""
    meta = column._meta
    sql = f"{_q(meta.db_column_name)} {column.column_type}"
    if meta.primary_key:
        sql += " PRIMARY KEY"
    if meta.unique:
        sql += " UNIQUE"
    if not meta.null:
        sql += " NOT NULL"
    if not _is_serial(column):
        sql += f" DEFAULT {column.get_sql_value(value=column.get_default_value())}"
    return sql


def _is_serial(column: Column) -> bool:
    return type(column).__name__ in ("Serial", "BigSerial")


def _expected_statements(table: type[Table], sec: TableSecurity | None) -> list[tuple[Kind, str, str]]:
    """(kind, name, SQL) building `table` as the code describes it, in pg_temp."""
    t = "pg_temp." + _q(table._meta.tablename)
    columns = ", ".join(_column_ddl(c) for c in table._meta.columns)
    steps: list[tuple[Kind, str, str]] = [("table", "", f"CREATE TEMPORARY TABLE {t} ({columns})")]
    for constraint in table._meta.constraints:
        steps.append(
            ("constraint", constraint._meta.name, f"ALTER TABLE {t} ADD CONSTRAINT {_q(constraint._meta.name)} {constraint.ddl}")
        )
    for column in table._meta.columns:
        if column._meta.index:
            name = table._get_index_name([column._meta.db_column_name])
            method = column._meta.index_method.value
            steps.append(
                ("index", name, f"CREATE INDEX {_q(name)} ON {t} USING {method} ({_q(column._meta.db_column_name)})")
            )
    if sec is None:
        return steps
    if sec.tsvector is not None:
        tv = sec.tsvector
        steps.append(
            (
                "column",
                tv.column,
                f"ALTER TABLE {t} ADD COLUMN {_q(tv.column)} tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('{tv.config}'::regconfig, coalesce({_q(tv.source)}, ''))) STORED",
            )
        )
    for index in sec.indexes:
        steps.append(("index", index.name, f"CREATE INDEX {_q(index.name)} ON {t} USING {index.method} {index.definition}"))
    if sec.owner_default is not None:
        steps.append(
            ("column", sec.owner_default, f"ALTER TABLE {t} ALTER COLUMN {_q(sec.owner_default)} SET DEFAULT auth.uid()")
        )
    for policy in sec.policies:
        steps.append(("policy", policy.name, _policy_sql(t, policy)))
    return steps


def _policy_sql(qualified_table: str, policy: Policy) -> str:
    sql = (
        f"CREATE POLICY {_q(policy.name)} ON {qualified_table} AS PERMISSIVE "
        f"FOR {policy.command} TO {', '.join(policy.roles)}"
    )
    if policy.using is not None:
        sql += f" USING ({policy.using})"
    if policy.with_check is not None:
        sql += f" WITH CHECK ({policy.with_check})"
    return sql


async def _build_expected(
    conn: asyncpg.Connection, table: type[Table], sec: TableSecurity | None, label: str
) -> tuple[TableShape | None, list[Difference]]:
    problems: list[Difference] = []
    for kind, name, sql in _expected_statements(table, sec):
        try:
            async with conn.transaction():  # a savepoint: one bad declaration spoils nothing else
                await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            problems.append(Difference(label, kind, name, "a declaration PostgreSQL accepts", f"error: {exc}"))
            if kind == "table":
                return None, problems
    oid = await conn.fetchval(_TEMP_TABLE_SQL, table._meta.tablename)
    return await _read_shape(conn, oid), problems


# --------------------------------------------------------------------------
# Comparisons.


def _compare_columns(label: str, table: type[Table], expected: TableShape, live: TableShape) -> list[Difference]:
    diffs: list[Difference] = []
    serial = {c._meta.db_column_name for c in table._meta.columns if _is_serial(c)}
    for name, exp in expected.columns.items():
        got = live.columns.get(name)
        if got is None:
            diffs.append(Difference(label, "column", name, f"column {exp.describe()}", "none"))
            continue
        if exp.type != got.type:
            diffs.append(Difference(label, "column", name, f"type {exp.type}", got.type))
        if exp.notnull != got.notnull:
            diffs.append(
                Difference(label, "column", name, "not null" if exp.notnull else "null", "not null" if got.notnull else "null")
            )
        if exp.generated or got.generated:
            if (exp.generated, exp.default) != (got.generated, got.default):
                diffs.append(Difference(label, "column", name, _generation(exp), _generation(got)))
        elif name in serial:
            if not (got.default or "").startswith("nextval("):
                diffs.append(Difference(label, "column", name, "default nextval(...)", _default(got)))
        elif exp.default != got.default:
            diffs.append(Difference(label, "column", name, _default(exp), _default(got)))
        if exp.identity != got.identity:
            diffs.append(
                Difference(label, "column", name, f"identity {exp.identity or 'none'}", f"identity {got.identity or 'none'}")
            )
    for name, got in live.columns.items():
        if name not in expected.columns:
            diffs.append(Difference(label, "column", name, "no such column", f"column {got.describe()}"))
    return diffs


def _default(shape: ColumnShape) -> str:
    return "no default" if shape.default is None else f"default {shape.default}"


def _generation(shape: ColumnShape) -> str:
    return f"generated always as ({shape.default}) stored" if shape.generated else "not generated"


def _compare_named(
    label: str, kind: Kind, expected: Mapping[str, str], live: Mapping[str, str]
) -> list[Difference]:
    diffs: list[Difference] = []
    for name, exp in expected.items():
        got = live.get(name)
        if got is None:
            diffs.append(Difference(label, kind, name, exp, "none"))
        elif got != exp:
            diffs.append(Difference(label, kind, name, exp, got))
    for name, got in live.items():
        if name not in expected:
            diffs.append(Difference(label, kind, name, "none", got))
    return diffs


def _compare_policies(label: str, expected: TableShape, live: TableShape) -> list[Difference]:
    diffs: list[Difference] = []
    for name, exp in expected.policies.items():
        got = live.policies.get(name)
        if got is None:
            diffs.append(Difference(label, "policy", name, exp.describe(), "none"))
            continue
        if exp.command != got.command:
            diffs.append(Difference(label, "policy", name, f"FOR {exp.command}", f"FOR {got.command}"))
        if exp.permissive != got.permissive:
            diffs.append(
                Difference(
                    label,
                    "policy",
                    name,
                    "PERMISSIVE" if exp.permissive else "RESTRICTIVE",
                    "PERMISSIVE" if got.permissive else "RESTRICTIVE",
                )
            )
        if exp.roles != got.roles:
            diffs.append(Difference(label, "policy", name, f"TO {', '.join(exp.roles)}", f"TO {', '.join(got.roles)}"))
        if exp.using != got.using:
            diffs.append(Difference(label, "policy", name, _clause("USING", exp.using), _clause("USING", got.using)))
        if exp.with_check != got.with_check:
            diffs.append(
                Difference(label, "policy", name, _clause("WITH CHECK", exp.with_check), _clause("WITH CHECK", got.with_check))
            )
    for name, got in live.policies.items():
        if name not in expected.policies:
            diffs.append(Difference(label, "policy", name, "none", got.describe()))
    return diffs


def _clause(keyword: str, expr: str | None) -> str:
    return f"no {keyword}" if expr is None else f"{keyword} ({_one_line(expr)})"


def _fk_text(ref_schema: str, ref_table: str, ref_columns: Sequence[str], on_delete: str, on_update: str) -> str:
    target = ref_table if ref_schema == "public" else f"{ref_schema}.{ref_table}"
    return f"REFERENCES {target}({', '.join(ref_columns)}) ON DELETE {on_delete} ON UPDATE {on_update}"


async def _compare_foreign_keys(conn: asyncpg.Connection, label: str, table: type[Table], oid: int) -> list[Difference]:
    expected: dict[tuple[str, ...], str] = {}
    for column in table._meta.columns:
        if isinstance(column, ForeignKey):
            fk = column._foreign_key_meta
            ref = fk.resolved_references
            expected[(column._meta.db_column_name,)] = _fk_text(
                ref._meta.schema or "public",
                ref._meta.tablename,
                [fk.resolved_target_column._meta.db_column_name],
                fk.on_delete.value,
                fk.on_update.value,
            )
    live: dict[tuple[str, ...], str] = {}
    for r in await conn.fetch(_FOREIGN_KEYS_SQL, oid):
        text = _fk_text(
            r["ref_schema"],
            r["ref_table"],
            list(r["ref_columns"]),
            _FK_ACTIONS.get(r["on_delete"], r["on_delete"]),
            _FK_ACTIONS.get(r["on_update"], r["on_update"]),
        )
        live[tuple(r["columns"])] = text if r["validated"] else text + " NOT VALID"
    diffs: list[Difference] = []
    for columns in [*expected, *(c for c in live if c not in expected)]:
        exp, got = expected.get(columns, "no foreign key"), live.get(columns, "no foreign key")
        if exp != got:
            if len(columns) == 1:
                diffs.append(Difference(label, "column", columns[0], exp, got))
            else:
                diffs.append(Difference(label, "foreign key", f"({', '.join(columns)})", exp, got))
    return diffs


def _trigger_text(tgtype: int, function: str, enabled: str) -> str:
    if tgtype & 64:
        timing = "INSTEAD OF"
    elif tgtype & 2:
        timing = "BEFORE"
    else:
        timing = "AFTER"
    events = [e for bit, e in ((4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE")) if tgtype & bit]
    level = "ROW" if tgtype & 1 else "STATEMENT"
    text = f"{timing} {' OR '.join(events)} FOR EACH {level} EXECUTE FUNCTION {function}()"
    return text if enabled != "D" else text + " (disabled)"


async def _compare_triggers(
    conn: asyncpg.Connection, label: str, tablename: str, sec: TableSecurity, oid: int
) -> list[Difference]:
    expected: dict[str, str] = {}
    if sec.touch_updated_at:
        # BEFORE (2) UPDATE (16) FOR EACH ROW (1)
        expected[f"{tablename}_touch_updated_at"] = _trigger_text(2 | 16 | 1, TOUCH_FUNCTION, "O")
    live = {r["name"]: _trigger_text(r["type"], r["function"], r["enabled"]) for r in await conn.fetch(_TRIGGERS_SQL, oid)}
    return _compare_named(label, "trigger", expected, live)


def _expected_grants(grants: Iterable[Grant]) -> set[tuple[str | None, str, str]]:
    """(column or None for the table, grantee, privilege)."""
    out: set[tuple[str | None, str, str]] = set()
    for g in grants:
        for privilege in g.privileges:
            if g.columns:
                out.update((c, g.role, privilege) for c in g.columns)
            else:
                out.add((None, g.role, privilege))
    return out


async def _compare_grants(
    conn: asyncpg.Connection, label: str, grants: Iterable[Grant], oid: int
) -> list[Difference]:
    expected = {(c, r, p) for c, r, p in _expected_grants(grants) if r in CHECKED_GRANTEES}
    # (column or None, grantee, privilege) -> WITH GRANT OPTION
    live: dict[tuple[str | None, str, str], bool] = {}
    for r in await conn.fetch(_GRANTS_SQL, oid):
        if r["grantee"] in CHECKED_GRANTEES:
            live[(r["column_name"], r["grantee"], r["privilege"])] = r["grantable"]

    def name(key: tuple[str | None, str, str]) -> str:
        column, grantee, privilege = key
        return f"{privilege} to {grantee}" if column is None else f"{privilege} ({column}) to {grantee}"

    def order(key: tuple[str | None, str, str]) -> tuple[str, str, str]:
        return (key[0] or "", key[1], key[2])

    diffs: list[Difference] = []
    for key in sorted(expected | set(live), key=order):
        if key not in live:
            diffs.append(Difference(label, "grant", name(key), "granted", "not granted"))
        elif key not in expected:
            found = "granted WITH GRANT OPTION" if live[key] else "granted"
            diffs.append(Difference(label, "grant", name(key), "not granted", found))
        elif live[key]:
            diffs.append(Difference(label, "grant", name(key), "granted", "granted WITH GRANT OPTION"))
    return diffs


def _compare_rls(label: str, row: asyncpg.Record) -> list[Difference]:
    diffs: list[Difference] = []
    if not row["rls"]:
        diffs.append(Difference(label, "rls", "", "row level security enabled", "disabled"))
    if row["force_rls"]:
        diffs.append(Difference(label, "rls", "", "row level security not forced", "FORCE ROW LEVEL SECURITY"))
    return diffs


# --------------------------------------------------------------------------


def internal_table_grants() -> dict[str, tuple[Grant, ...]]:
    """What the security migration leaves on the tables that are not user
    data: nothing for any API role; the admin login tables for the admin."""
    crud: tuple[Privilege, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
    return {t: ((Grant(ADMIN_ROLE, crud),) if t in ADMIN_LOGIN_TABLES else ()) for t in INTERNAL_TABLES}


def declaration_problems(
    table_classes: Sequence[type[Table]], declarations: Sequence[TableSecurity]
) -> list[Difference]:
    """Every table class needs exactly one TableSecurity, and every
    TableSecurity a registered table class: a table can never ship open."""
    diffs: list[Difference] = []
    declared: dict[str, int] = {}
    for sec in declarations:
        declared[sec.tablename] = declared.get(sec.tablename, 0) + 1
    registered = {t._meta.tablename for t in table_classes}
    for table in table_classes:
        name = table._meta.tablename
        if name not in declared:
            diffs.append(
                Difference(name, "declaration", "", "a TableSecurity declaration (centrid.schema.tables.SECURITY)", "none")
            )
    for name, count in declared.items():
        if count > 1:
            diffs.append(Difference(name, "declaration", "", "one TableSecurity declaration", f"{count}"))
        if name not in registered:
            diffs.append(
                Difference(
                    name,
                    "declaration",
                    "",
                    "its table class registered in the centrid app (APP_CONFIG.table_classes)",
                    "a TableSecurity declaration only",
                )
            )
    return diffs


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
        for r in await conn.fetch(_PUBLIC_TABLES_SQL):
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
    row = await conn.fetchrow(_LIVE_TABLE_SQL, schema, table._meta.tablename)
    if row is None:
        return [Difference(label, "table", "", "table", "none")]
    oid: int = row["oid"]
    expected, diffs = await _build_expected(conn, table, sec, label)
    if expected is None:
        return diffs
    live = await _read_shape(conn, oid)
    diffs += _compare_columns(label, table, expected, live)
    diffs += _compare_named(label, "constraint", expected.constraints, live.constraints)
    diffs += await _compare_foreign_keys(conn, label, table, oid)
    diffs += _compare_named(label, "index", expected.indexes, live.indexes)
    if sec is not None:
        diffs += await _compare_triggers(conn, label, table._meta.tablename, sec, oid)
        diffs += _compare_rls(label, row)
        diffs += _compare_policies(label, expected, live)
        diffs += await _compare_grants(conn, label, sec.grants, oid)
    return diffs


async def _check_internal(conn: asyncpg.Connection, tablename: str, grants: tuple[Grant, ...]) -> list[Difference]:
    row = await conn.fetchrow(_LIVE_TABLE_SQL, "public", tablename)
    if row is None:
        return [Difference(tablename, "table", "", "table", "none")]
    oid: int = row["oid"]
    diffs = _compare_rls(tablename, row)
    live = await _read_shape(conn, oid)
    diffs += _compare_named(tablename, "policy", {}, {n: p.describe() for n, p in live.policies.items()})
    diffs += await _compare_grants(conn, tablename, grants, oid)
    return diffs
