"""Declarations -> SQL, for the security migration.

The output is pasted literally into a migration file (see
`centrid.commands.new_migration`), so a migration keeps meaning what
it meant when it was written even after the declarations move on.
"""

from __future__ import annotations

from centrid.schema.security import ADMIN_ROLE, ALL_ROLES, Extension, Grant, Policy, TableSecurity

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


def policy_sql(table: str, policy: Policy) -> str:
    sql = f"CREATE POLICY {policy.name} ON public.{table} AS PERMISSIVE FOR {policy.command} TO {_roles(policy.roles)}"
    if policy.using is not None:
        sql += f"\n    USING ({policy.using})"
    if policy.with_check is not None:
        sql += f"\n    WITH CHECK ({policy.with_check})"
    return sql + ";"


def grant_sql(table: str, grant: Grant) -> str:
    if grant.columns:
        cols = ", ".join(grant.columns)
        privileges = ", ".join(f"{p} ({cols})" for p in grant.privileges)
    else:
        privileges = ", ".join(grant.privileges)
    return f"GRANT {privileges} ON public.{table} TO {grant.role};"


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


def table_forwards_sql(sec: TableSecurity) -> str:
    t = sec.tablename
    lines = [f"-- {t}"]
    if sec.tsvector is not None:
        tv = sec.tsvector
        lines.append(
            f"ALTER TABLE public.{t} ADD COLUMN {tv.column} tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('{tv.config}'::regconfig, coalesce({tv.source}, ''))) STORED;"
        )
    for index in sec.indexes:
        lines.append(f"CREATE INDEX {index.name} ON public.{t} USING {index.method} {index.definition};")
    if sec.owner_default is not None:
        lines.append(f"ALTER TABLE public.{t} ALTER COLUMN {sec.owner_default} SET DEFAULT auth.uid();")
    if sec.touch_updated_at:
        lines.append(
            f"CREATE TRIGGER {t}_touch_updated_at BEFORE UPDATE ON public.{t} "
            "FOR EACH ROW EXECUTE FUNCTION public.centrid_touch_updated_at();"
        )
    lines.append(f"ALTER TABLE public.{t} ENABLE ROW LEVEL SECURITY;")
    lines.append(f"REVOKE ALL ON public.{t} FROM PUBLIC, {_roles(ALL_ROLES)};")
    lines.extend(grant_sql(t, g) for g in sec.grants)
    lines.extend(policy_sql(t, p) for p in sec.policies)
    return "\n".join(lines)


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
    if sec.tsvector is not None:
        lines.append(f"ALTER TABLE public.{t} DROP COLUMN IF EXISTS {sec.tsvector.column};")
    return "\n".join(lines)


def internal_tables_forwards_sql() -> str:
    lines = ["-- internal tables: out of reach of every API role"]
    for t in INTERNAL_TABLES:
        lines.append(f"ALTER TABLE public.{t} ENABLE ROW LEVEL SECURITY;")
        lines.append(f"REVOKE ALL ON public.{t} FROM PUBLIC, anon, authenticated, service_role;")
    for t in ADMIN_LOGIN_TABLES:
        lines.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON public.{t} TO {ADMIN_ROLE};")
        lines.append(f"GRANT USAGE, SELECT ON SEQUENCE public.{t}_id_seq TO {ADMIN_ROLE};")
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
