"""The login role for request traffic: `centrid_authenticator`.

Like Supabase's `authenticator`: LOGIN, NOINHERIT, owns nothing, bypasses
nothing, and may only SET ROLE to the API roles and the admin role. A
request pool logged in as it cannot step out of its scope: `SET ROLE NONE`
leaves it with no privileges at all, and it cannot become the owner.
Its sessions start as `anon` (a role-level default, so also behind a pooler
that drops startup parameters). It has no password; the embedded database
trusts local connections, and
elsewhere an operator sets one (see README). Roles are cluster-wide and
never dropped by backwards.
"""

from centrid.db.migrations import SerializedMigrationManager, sql_step

ID = "2026-11-24T21:53:01:509701"
VERSION = "1.38.0"
DESCRIPTION = "centrid_authenticator login role for request traffic"

FORWARDS_SQL = r"""
DO $role$
DECLARE
    r text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'centrid_authenticator') THEN
        CREATE ROLE centrid_authenticator LOGIN NOINHERIT NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role', 'centrid_admin'] LOOP
        IF NOT pg_has_role('centrid_authenticator', r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO centrid_authenticator', r);
        END IF;
    END LOOP;
    -- Every session of the login starts as anon, also where the `role`
    -- startup parameter cannot be passed (PgBouncer drops it).
    ALTER ROLE centrid_authenticator SET role = 'anon';
END
$role$;
"""

BACKWARDS_SQL = r"""
-- The role is cluster-wide and may serve other databases: kept.
SELECT 1;
"""


async def forwards() -> SerializedMigrationManager:
    manager = SerializedMigrationManager(migration_id=ID, app_name="centrid", description=DESCRIPTION)
    manager.add_raw(sql_step(FORWARDS_SQL))
    manager.add_raw_backwards(sql_step(BACKWARDS_SQL))
    return manager
