"""Declarations -> SQL: the one renderer.

Migrations paste its output literally into their files (see
`centrid.schema.plan`), so a migration keeps meaning what it meant when it
was written even after the declarations move on. `piccolo centrid check`
runs the very same statements against a copy of each table in pg_temp
(`table_statements(..., schema="pg_temp")`, centrid.schema.drift), so the
live database is compared with exactly what a migration creates.
"""

from __future__ import annotations

from dataclasses import dataclass


from centrid.schema.difference import Kind
from centrid.schema.roles import ADMIN_ROLE, ALL_ROLES, API_ROLES
from centrid.schema.security import Extension, Grant, InheritedOwner, Policy, Privilege, TableSecurity


def quote_ident(identifier: str) -> str:
    """An identifier as PostgreSQL's quote_ident would always quote it."""
    return '"' + identifier.replace('"', '""') + '"'

# Tables that are not user data: Piccolo's migration ledger and the admin
# login tables. No API role may reach them; the admin role may use its own.
INTERNAL_TABLES = ("migration", "piccolo_user", "sessions")
ADMIN_LOGIN_TABLES = ("piccolo_user", "sessions")

SHARED_FUNCTIONS_SQL = r"""
CREATE FUNCTION public.centrid_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION public.centrid_touch_updated_at() FROM PUBLIC;

-- Runs as its owner so that inserting an auth user (by whoever may do that)
-- always yields a profile, regardless of the inserter's privileges.
CREATE FUNCTION public.centrid_create_profile() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = ''
AS $fn$
BEGIN
    INSERT INTO public.user_profiles (user_id, name)
    VALUES (NEW.id, NEW.raw_user_meta_data ->> 'name');
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION public.centrid_create_profile() FROM PUBLIC;
CREATE TRIGGER centrid_on_auth_user_created AFTER INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION public.centrid_create_profile();
"""

SHARED_FUNCTIONS_BACKWARDS_SQL = r"""
DROP TRIGGER IF EXISTS centrid_on_auth_user_created ON auth.users;
DROP FUNCTION IF EXISTS public.centrid_create_profile();
DROP FUNCTION IF EXISTS public.centrid_touch_updated_at();
"""


def _roles(roles: tuple[str, ...]) -> str:
    return ", ".join(roles)


def policy_sql(table: str, policy: Policy, *, schema: str = "public") -> str:
    sql = f"CREATE POLICY {policy.name} ON {schema}.{table} AS PERMISSIVE FOR {policy.command} TO {_roles(policy.roles)}"
    if policy.using is not None:
        sql += f"\n    USING ({policy.using})"
    if policy.with_check is not None:
        sql += f"\n    WITH CHECK ({policy.with_check})"
    return sql + ";"


def grant_sql(table: str, grant: Grant, *, schema: str = "public") -> str:
    if grant.columns:
        cols = ", ".join(grant.columns)
        privileges = ", ".join(f"{p} ({cols})" for p in grant.privileges)
    else:
        privileges = ", ".join(grant.privileges)
    return f"GRANT {privileges} ON {schema}.{table} TO {grant.role};"


# Snapshot keys of extensions start with this; table names never contain ':'.
EXTENSION_KEY_PREFIX = "extension:"


def extension_key(ext: Extension) -> str:
    return EXTENSION_KEY_PREFIX + ext.name


def extension_forwards_sql(ext: Extension) -> str:
    """Create the extension where it is missing, in its own schema, usable
    by every API role. An installation that exists (Supabase's, or one an
    operator made in another schema) is used as it is: nothing of theirs is
    touched. The version is checked before any migration runs
    (centrid.db.migrations.preflight)."""
    return (
        f"-- extension {ext.name} (>= {ext.min_version})\n"
        "DO $ext$\n"
        "BEGIN\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = '{ext.name}') THEN\n"
        f"        CREATE SCHEMA IF NOT EXISTS {ext.schema};\n"
        f"        GRANT USAGE ON SCHEMA {ext.schema} TO {_roles(ALL_ROLES)};\n"
        f"        CREATE EXTENSION {ext.name} WITH SCHEMA {ext.schema};\n"
        "    END IF;\n"
        "END\n"
        "$ext$;"
    )


def extension_backwards_sql(ext: Extension) -> str:
    # Kept: other schemas or applications may use it, and on Supabase it is
    # the platform's. Dropping it is an operator's decision.
    return f"-- extension {ext.name}: kept\nSELECT 1;"


def declared_extensions(tables: tuple[TableSecurity, ...] | list[TableSecurity]) -> list[Extension]:
    """Every extension the declarations need, once each, in declaration order."""
    seen: dict[str, Extension] = {}
    for sec in tables:
        for ext in sec.extensions:
            seen.setdefault(ext.name, ext)
    return list(seen.values())


@dataclass(frozen=True)
class Statement:
    """One statement of a table's security, with what it creates (for the
    drift check's report when PostgreSQL refuses it)."""

    kind: Kind
    name: str
    sql: str


def inherited_owner_statements(table: str, owner: InheritedOwner, *, schema: str = "public") -> list[Statement]:
    """The copied owner column, filled for existing rows, kept by a trigger
    and tied to the parent by a composite foreign key. (A temporary copy, the
    drift check's, may not reference a permanent table: the check skips the
    key's statement and compares foreign keys structurally.)"""
    target = f"{schema}.{table}"
    parent = f"public.{owner.parent}"
    column, via = owner.column, owner.via
    function, trigger = owner.function_name(table), owner.trigger_name(table)
    return [
        Statement("column", column, f"ALTER TABLE {target} ADD COLUMN {column} uuid;"),
        Statement(
            "column",
            column,
            f"UPDATE {target} AS c SET {column} = p.{owner.parent_column} FROM {parent} AS p "
            f"WHERE p.{owner.parent_key} = c.{via};",
        ),
        Statement("column", column, f"ALTER TABLE {target} ALTER COLUMN {column} SET NOT NULL;"),
        # Runs as the caller: a user's insert can only find (and so copy the
        # owner of) a parent RLS lets them see; any other parent yields NULL,
        # which the policy's WITH CHECK refuses before NOT NULL would.
        Statement(
            "trigger",
            trigger,
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
            "    LANGUAGE plpgsql\n"
            "    SET search_path = ''\n"
            "AS $fn$\n"
            "BEGIN\n"
            f"    NEW.{column} := (SELECT p.{owner.parent_column} FROM {parent} AS p WHERE p.{owner.parent_key} = NEW.{via});\n"
            "    RETURN NEW;\n"
            "END\n"
            "$fn$;\n"
            f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC;",
        ),
        Statement(
            "trigger",
            trigger,
            f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OF {via}, {column} ON {target} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}();",
        ),
        Statement(
            "foreign key",
            f"({via}, {column})",
            f"ALTER TABLE {target} ADD CONSTRAINT {owner.constraint_name(table)} FOREIGN KEY ({via}, {column}) "
            f"REFERENCES {parent} ({owner.parent_key}, {owner.parent_column}) "
            f"ON UPDATE {owner.on_update} ON DELETE {owner.on_delete};",
        ),
    ]


def inherited_owner_backwards_sql(table: str, owner: InheritedOwner) -> list[str]:
    return [
        f"ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {owner.constraint_name(table)};",
        f"DROP TRIGGER IF EXISTS {owner.trigger_name(table)} ON public.{table};",
        f"DROP FUNCTION IF EXISTS {owner.function_name(table)}();",
        f"ALTER TABLE public.{table} DROP COLUMN IF EXISTS {owner.column};",
    ]


def table_statements(sec: TableSecurity, *, schema: str = "public") -> list[Statement]:
    """Everything `sec` puts on its table, in the order a migration runs it."""
    t = sec.tablename
    target = f"{schema}.{t}"
    out: list[Statement] = []
    if sec.tsvector is not None:
        tv = sec.tsvector
        out.append(
            Statement(
                "column",
                tv.column,
                f"ALTER TABLE {target} ADD COLUMN {tv.column} tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('{tv.config}'::regconfig, coalesce({tv.source}, ''))) STORED;",
            )
        )
    if sec.inherited_owner is not None:
        out.extend(inherited_owner_statements(t, sec.inherited_owner, schema=schema))
    for index in sec.indexes:
        out.append(
            Statement("index", index.name, f"CREATE INDEX {index.name} ON {target} USING {index.method} {index.definition};")
        )
    if sec.owner_default is not None:
        out.append(
            Statement(
                "column", sec.owner_default, f"ALTER TABLE {target} ALTER COLUMN {sec.owner_default} SET DEFAULT auth.uid();"
            )
        )
    if sec.touch_updated_at:
        name = f"{t}_touch_updated_at"
        out.append(
            Statement(
                "trigger",
                name,
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {target} "
                "FOR EACH ROW EXECUTE FUNCTION public.centrid_touch_updated_at();",
            )
        )
    out.append(Statement("rls", "", f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY;"))
    out.append(Statement("grant", "", f"REVOKE ALL ON {target} FROM PUBLIC, {_roles(ALL_ROLES)};"))
    out.extend(Statement("grant", g.role, grant_sql(t, g, schema=schema)) for g in sec.grants)
    out.extend(Statement("policy", p.name, policy_sql(t, p, schema=schema)) for p in sec.policies)
    return out


# Snapshot keys of a table's storage (TableStorage): "storage:<table>".
STORAGE_KEY_PREFIX = "storage:"


def storage_key(sec: TableSecurity) -> str:
    return STORAGE_KEY_PREFIX + sec.tablename


def storage_statements(sec: TableSecurity, *, schema: str = "public") -> list[Statement]:
    """The declared storage (TableStorage). Kept out of `table_statements`:
    the planner gives it a snapshot entry of its own, so a change costs an
    ALTER, not the table's whole security dropped and rebuilt."""
    target = f"{schema}.{sec.tablename}"
    storage = sec.storage
    if storage is None:
        return []
    out = [
        Statement("column", c.column, f"ALTER TABLE {target} ALTER COLUMN {c.column} SET STORAGE {c.mode.upper()};")
        for c in storage.columns
    ]
    if storage.toast_tuple_target is not None:
        out.append(
            Statement("storage", "", f"ALTER TABLE {target} SET (toast_tuple_target = {storage.toast_tuple_target});")
        )
    return out


def storage_forwards_sql(sec: TableSecurity) -> str:
    """The statements, under a header naming each column's type: ALTER
    COLUMN ... TYPE (another embedding dimension, say) resets a column to
    its type's storage, so a new type must make this entry change too and
    the planner re-apply it after the auto migration that alters it."""
    types = sec.column_types()
    columns = ", ".join(f"{c.column} {types[c.column]}" for c in sec.storage.columns) if sec.storage else ""
    return "\n".join([f"-- {sec.tablename}: storage ({columns})", *(s.sql for s in storage_statements(sec))])


def storage_backwards_sql(sec: TableSecurity) -> str:
    """Each column back to its type's own storage mode, read from pg_type
    when it runs (`SET STORAGE DEFAULT` needs PostgreSQL 16), and the
    table's toast target back to PostgreSQL's default."""
    t = sec.tablename
    lines = [f"-- {t}: storage, back to PostgreSQL's defaults"]
    storage = sec.storage
    if storage is None:
        return lines[0]
    for c in storage.columns:
        lines.append(
            "DO $storage$\n"
            "DECLARE mode text;\n"
            "BEGIN\n"
            "    SELECT CASE ty.typstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END\n"
            "    INTO mode FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid\n"
            f"    WHERE a.attrelid = 'public.{t}'::regclass AND a.attname = '{c.column}' AND NOT a.attisdropped;\n"
            "    IF mode IS NOT NULL THEN\n"
            f"        EXECUTE format('ALTER TABLE public.{t} ALTER COLUMN {c.column} SET STORAGE %s', mode);\n"
            "    END IF;\n"
            "END\n"
            "$storage$;"
        )
    if storage.toast_tuple_target is not None:
        lines.append(f"ALTER TABLE public.{t} RESET (toast_tuple_target);")
    return "\n".join(lines)


def table_forwards_sql(sec: TableSecurity) -> str:
    return "\n".join([f"-- {sec.tablename}", *(s.sql for s in table_statements(sec))])


def table_backwards_sql(sec: TableSecurity) -> str:
    t = sec.tablename
    lines = [f"-- {t}"]
    lines.extend(f"DROP POLICY IF EXISTS {p.name} ON public.{t};" for p in sec.policies)
    lines.append(f"REVOKE ALL ON public.{t} FROM {_roles(ALL_ROLES)};")
    lines.append(f"ALTER TABLE public.{t} DISABLE ROW LEVEL SECURITY;")
    if sec.touch_updated_at:
        lines.append(f"DROP TRIGGER IF EXISTS {t}_touch_updated_at ON public.{t};")
    if sec.owner_default is not None:
        lines.append(f"ALTER TABLE public.{t} ALTER COLUMN {sec.owner_default} DROP DEFAULT;")
    lines.extend(f"DROP INDEX IF EXISTS public.{i.name};" for i in sec.indexes)
    if sec.inherited_owner is not None:
        lines.extend(inherited_owner_backwards_sql(t, sec.inherited_owner))
    if sec.tsvector is not None:
        lines.append(f"ALTER TABLE public.{t} DROP COLUMN IF EXISTS {sec.tsvector.column};")
    return "\n".join(lines)


_CRUD: tuple[Privilege, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")


def internal_table_grants() -> dict[str, tuple[Grant, ...]]:
    """What the security migration leaves on the tables that are not user
    data: nothing for any API role; the admin login tables for the admin."""
    return {t: ((Grant(ADMIN_ROLE, _CRUD),) if t in ADMIN_LOGIN_TABLES else ()) for t in INTERNAL_TABLES}


def internal_tables_forwards_sql() -> str:
    lines = ["-- internal tables: out of reach of every API role"]
    for t in INTERNAL_TABLES:
        lines.append(f"ALTER TABLE public.{t} ENABLE ROW LEVEL SECURITY;")
        lines.append(f"REVOKE ALL ON public.{t} FROM PUBLIC, {_roles(API_ROLES)};")
    for t, grants in internal_table_grants().items():
        for grant in grants:
            lines.append(grant_sql(t, grant))
            lines.append(f"GRANT USAGE, SELECT ON SEQUENCE public.{t}_id_seq TO {grant.role};")
    lines.append(f"GRANT USAGE ON SCHEMA public TO {_roles(ALL_ROLES)};")
    return "\n".join(lines)


def internal_tables_backwards_sql() -> str:
    lines = []
    for t in ADMIN_LOGIN_TABLES:
        lines.append(f"REVOKE ALL ON public.{t} FROM {ADMIN_ROLE};")
        lines.append(f"REVOKE ALL ON SEQUENCE public.{t}_id_seq FROM {ADMIN_ROLE};")
    for t in INTERNAL_TABLES:
        lines.append(f"ALTER TABLE public.{t} DISABLE ROW LEVEL SECURITY;")
    return "\n".join(lines)


def security_sql(tables: tuple[TableSecurity, ...], *, shared: bool) -> tuple[str, str]:
    """(forwards, backwards) SQL for the given tables' declarations."""
    forwards: list[str] = []
    backwards: list[str] = []
    if shared:
        forwards.append(SHARED_FUNCTIONS_SQL.strip())
    forwards.extend(table_forwards_sql(s) for s in tables)
    backwards.extend(table_backwards_sql(s) for s in reversed(tables))
    if shared:
        forwards.append(internal_tables_forwards_sql())
        backwards.insert(0, internal_tables_backwards_sql())
        backwards.append(SHARED_FUNCTIONS_BACKWARDS_SQL.strip())
    return "\n\n".join(forwards) + "\n", "\n\n".join(backwards) + "\n"
