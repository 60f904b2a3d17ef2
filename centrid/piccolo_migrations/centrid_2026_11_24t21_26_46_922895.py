"""Auth shim (Supabase compatible), API roles, and migration bookkeeping.

Creates only what is missing: on a Supabase database the real `auth`
schema, `auth.users`, `auth.uid()` and roles are left exactly as they are.
Objects this migration creates carry the comment `centrid auth shim`, and
backwards drops only objects with that comment. Roles are cluster-wide and
may serve other databases, so they are never dropped.
"""

from centrid.db.migrations import SerializedMigrationManager, sql_step

ID = "2026-11-24T21:26:46:922895"
VERSION = "1.38.0"
DESCRIPTION = "auth shim, roles, migration dedup"

FORWARDS_SQL = r"""
DO $shim$
DECLARE
    r text;
BEGIN
    -- Roles as Supabase has them, plus the role Piccolo Admin works under.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'centrid_admin') THEN
        CREATE ROLE centrid_admin NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    -- The login role must be able to SET ROLE to each of them.
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role', 'centrid_admin'] LOOP
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        COMMENT ON SCHEMA auth IS 'centrid auth shim';
        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, centrid_admin;
    END IF;

    IF to_regclass('auth.users') IS NULL THEN
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text,
            raw_user_meta_data jsonb,
            created_at timestamptz DEFAULT now()
        );
        COMMENT ON TABLE auth.users IS 'centrid auth shim';
    END IF;

    IF to_regprocedure('auth.uid()') IS NULL THEN
        -- As current Supabase: the `sub` of request.jwt.claims, falling back
        -- to the older request.jwt.claim.sub setting.
        CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE
            SET search_path = ''
        AS $fn$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $fn$;
        COMMENT ON FUNCTION auth.uid() IS 'centrid auth shim';
        GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role, centrid_admin;
    END IF;
END
$shim$;

-- Piccolo records a migration after its transaction; ours record it inside
-- (centrid.db.migrations), so Piccolo's second insert must be dropped.
CREATE FUNCTION public.centrid_migration_dedup() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM public.migration m WHERE m.app_name = NEW.app_name AND m.name = NEW.name) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION public.centrid_migration_dedup() FROM PUBLIC;
CREATE TRIGGER centrid_migration_dedup BEFORE INSERT ON public.migration
    FOR EACH ROW EXECUTE FUNCTION public.centrid_migration_dedup();
"""

BACKWARDS_SQL = r"""
DROP TRIGGER IF EXISTS centrid_migration_dedup ON public.migration;
DROP FUNCTION IF EXISTS public.centrid_migration_dedup();
DO $shim$
BEGIN
    IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = 'centrid auth shim' THEN
        DROP FUNCTION auth.uid();
    END IF;
    IF obj_description(to_regclass('auth.users'), 'pg_class') = 'centrid auth shim' THEN
        DROP TABLE auth.users;
    END IF;
    IF (SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'auth') = 'centrid auth shim'
       AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'auth')
       AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth')
    THEN
        DROP SCHEMA auth;
    END IF;
END
$shim$;
"""


async def forwards() -> SerializedMigrationManager:
    manager = SerializedMigrationManager(migration_id=ID, app_name="centrid", description=DESCRIPTION)
    manager.add_raw(sql_step(FORWARDS_SQL))
    manager.add_raw_backwards(sql_step(BACKWARDS_SQL))
    return manager
