"""Reading a table's shape from the catalogs.

The same queries read the live table and the expected one built in pg_temp
(centrid.schema.drift.expected), so PostgreSQL normalises both texts
(`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`)
the same way and a comparison never string-munges SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from centrid.schema.roles import ALL_ROLES

# Grantees whose privileges are compared exactly: a missing grant and an
# extra grant are both differences. Other roles (the owner) are not ours.
CHECKED_GRANTEES: tuple[str, ...] = ("PUBLIC", *ALL_ROLES)

_COLUMNS_SQL = """
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS notnull,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       a.attgenerated::text AS generated,
       a.attidentity::text AS identity,
       a.attstorage::text AS storage
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

FOREIGN_KEYS_SQL = """
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

_RLS_SQL = (
    "SELECT relrowsecurity AS rls, relforcerowsecurity AS force_rls, "
    "coalesce(reloptions, '{}') AS options FROM pg_class WHERE oid = $1"
)

LIVE_TABLE_SQL = """
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""

TEMP_TABLE_SQL = """
SELECT c.oid FROM pg_class c
WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = $1 AND c.relkind = 'r'
"""

PUBLIC_TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""

FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


@dataclass(frozen=True)
class ColumnShape:
    type: str
    notnull: bool
    default: str | None
    generated: bool
    identity: str
    # pg_attribute.attstorage: p(lain), m(ain), e(xternal), x (extended).
    storage: str

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
            text += f" USING ({one_line(self.using)})"
        if self.with_check is not None:
            text += f" WITH CHECK ({one_line(self.with_check)})"
        return text


# (column or None for the table, grantee, privilege)
GrantKey = tuple[str | None, str, str]


@dataclass(frozen=True)
class TableShape:
    columns: dict[str, ColumnShape]
    constraints: dict[str, str]
    indexes: dict[str, str]
    policies: dict[str, PolicyShape]
    triggers: dict[str, str]
    # Privileges of CHECKED_GRANTEES -> granted WITH GRANT OPTION.
    grants: dict[GrantKey, bool]
    rls: bool
    force_rls: bool
    # Storage parameters (`toast_tuple_target=4080`), sorted.
    options: tuple[str, ...] = ()


def one_line(sql: str) -> str:
    """PostgreSQL's deparsed expressions span lines; a difference is one line."""
    return " ".join(sql.split())


async def read_shape(conn: asyncpg.Connection, oid: int) -> TableShape:
    columns = {
        r["name"]: ColumnShape(
            type=r["type"],
            notnull=r["notnull"],
            default=r["default_expr"],
            generated=r["generated"] != "",
            identity=r["identity"],
            storage=r["storage"],
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
    triggers = {r["name"]: trigger_text(r["type"], r["function"], r["enabled"]) for r in await conn.fetch(_TRIGGERS_SQL, oid)}
    grants = {
        (r["column_name"], r["grantee"], r["privilege"]): r["grantable"]
        for r in await conn.fetch(_GRANTS_SQL, oid)
        if r["grantee"] in CHECKED_GRANTEES
    }
    rls = await conn.fetchrow(_RLS_SQL, oid)
    assert rls is not None, oid  # read within the transaction that found the table
    return TableShape(
        columns=columns,
        constraints=constraints,
        indexes=indexes,
        policies=policies,
        triggers=triggers,
        grants=grants,
        rls=rls["rls"],
        force_rls=rls["force_rls"],
        options=tuple(sorted(rls["options"])),
    )


def trigger_text(tgtype: int, function: str, enabled: str) -> str:
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
