"""Migrations through the real `piccolo` CLI, on databases that start empty.

forwards/backwards round trip; a failing migration leaves no trace; two
processes migrating one database at once; a database that already has
Supabase's auth objects.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.rls_support import SIX_TABLES
from tests.support import REPO, acting_as, fetch_as, run_piccolo

CENTRID_MIGRATIONS = [
    "2026-11-24T21:26:46:922895",
    "2026-11-24T21:27:52:641496",
    "2026-11-24T21:27:53:124866",
    "2026-11-24T21:53:01:509701",
    "2026-11-25T08:57:34:647686",
    "2026-11-25T09:13:17:214002",
    "2026-11-25T09:13:17:214201",
    "2026-11-25T09:13:17:458214",
    "2026-12-07T08:39:36:136837",
    "2026-12-07T08:39:36:150398",
    "2026-12-07T15:39:25:221979",
]
PICCOLO_APP_MIGRATIONS = [
    ("user", "2019-11-14T21:52:21"),
    ("user", "2020-06-11T21:38:55"),
    ("user", "2021-04-30T16:14:15"),
    ("session_auth", "2019-11-12T20:47:17"),
    ("session_auth", "2026-05-27T16:15:06:677127"),
]
INTERNAL_TABLES = {"migration", "piccolo_user", "sessions"}
SHIM = "centrid auth shim"
API_ROLES = {"anon", "authenticated", "service_role", "centrid_admin"}

# What a fully migrated database holds (written out, not derived).
FULL: dict[str, Any] = {
    "public_tables": set(SIX_TABLES) | INTERNAL_TABLES,
    "auth_tables": {"users"},
    "functions": {
        "auth.uid",
        "public.centrid_create_profile",
        "public.centrid_migration_dedup",
        "public.centrid_touch_updated_at",
        "public.centrid_document_chunks_user_id_from_documents",
    },
    "triggers": {
        "centrid_migration_dedup",
        "centrid_on_auth_user_created",
        "user_profiles_touch_updated_at",
        "documents_touch_updated_at",
        "agent_requests_touch_updated_at",
        "agent_sessions_touch_updated_at",
        "document_chunks_user_id_from_documents",
    },
    "policy_count": 19,
    "shim_comments": {("pg_namespace", "auth"), ("pg_class", "users"), ("pg_proc", "uid")},
    "rls_tables": set(SIX_TABLES) | INTERNAL_TABLES,
    # Columns stored otherwise than their type's default.
    "column_storage": {("document_chunks", "embedding", "m"), ("document_chunks", "search_vector", "m")},
    "table_options": {("document_chunks", "toast_tuple_target=4080")},
    "centrid_records": CENTRID_MIGRATIONS,
}

# What `backwards centrid all` leaves: Piccolo's own apps, nothing of ours.
AFTER_BACKWARDS: dict[str, Any] = {
    "public_tables": INTERNAL_TABLES,
    "auth_tables": set(),
    "functions": set(),
    "triggers": set(),
    "policy_count": 0,
    "shim_comments": set(),
    "rls_tables": set(),
    "column_storage": set(),
    "table_options": set(),
    "centrid_records": [],
}


async def catalog_state(conn: asyncpg.Connection) -> dict[str, Any]:
    async def names(sql: str) -> set[Any]:
        return {r[0] if len(r) == 1 else tuple(r) for r in await conn.fetch(sql)}

    return {
        "public_tables": await names(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ),
        "auth_tables": await names(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'auth' AND c.relkind = 'r'"
        ),
        "functions": await names(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('public', 'auth')"
        ),
        "triggers": await names("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"),
        "policy_count": await conn.fetchval("SELECT count(*) FROM pg_policies"),
        "shim_comments": await names(
            """
            SELECT 'pg_namespace', nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') = 'centrid auth shim'
            UNION ALL
            SELECT 'pg_class', relname FROM pg_class WHERE obj_description(oid, 'pg_class') = 'centrid auth shim'
            UNION ALL
            SELECT 'pg_proc', proname FROM pg_proc WHERE obj_description(oid, 'pg_proc') = 'centrid auth shim'
            """
        ),
        "rls_tables": await names(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relrowsecurity"
        ),
        "column_storage": await names(
            "SELECT c.relname, a.attname, a.attstorage::text FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.attstorage <> t.typstorage"
        ),
        "table_options": await names(
            "SELECT relname, unnest(reloptions) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND reloptions IS NOT NULL"
        ),
        "centrid_records": [
            r[0] for r in await conn.fetch("SELECT name FROM migration WHERE app_name = 'centrid' ORDER BY name")
        ],
    }


async def piccolo_app_records(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT app_name, name FROM migration WHERE app_name <> 'centrid' ORDER BY id")
    return [(r["app_name"], r["name"]) for r in rows]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "The command failed" not in output, output
    return output


async def rls_works(dsn: str, conn: asyncpg.Connection) -> None:
    """Two fresh users: each sees only their own profile and document."""
    users = []
    for name in ("Ann", "Ben"):
        user_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES ($1, $2, $3::jsonb)",
            uuid.UUID(user_id),
            f"{name.lower()}-{user_id[:6]}@example.test",
            f'{{"name": "{name}"}}',
        )
        users.append(user_id)
    ann, ben = users
    async with acting_as(dsn, "authenticated", ann, commit=True) as c:
        await c.execute("INSERT INTO documents (filename, file_type, file_size) VALUES ('ann.txt', 't', 1)")
    assert [r["name"] for r in await fetch_as(dsn, "authenticated", ann, "SELECT name FROM user_profiles")] == ["Ann"]
    assert [r["name"] for r in await fetch_as(dsn, "authenticated", ben, "SELECT name FROM user_profiles")] == ["Ben"]
    assert [r["filename"] for r in await fetch_as(dsn, "authenticated", ann, "SELECT filename FROM documents")] == ["ann.txt"]
    assert await fetch_as(dsn, "authenticated", ben, "SELECT filename FROM documents") == []
    assert await fetch_as(dsn, "anon", None, "SELECT filename FROM documents") == []


# --------------------------------------------------------------------------
# Round trip


async def test_forwards_backwards_forwards(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn))
        assert await catalog_state(conn) == FULL
        assert await piccolo_app_records(conn) == PICCOLO_APP_MIGRATIONS
        await rls_works(empty_dsn, conn)

        ok(run_piccolo(["migrations", "backwards", "centrid", "all", "--auto_agree"], empty_dsn))
        assert await catalog_state(conn) == AFTER_BACKWARDS
        assert await conn.fetchval("SELECT to_regnamespace('auth')") is None
        # Piccolo's own apps and their records stay; so do the cluster-wide roles.
        assert await piccolo_app_records(conn) == PICCOLO_APP_MIGRATIONS
        roles = {r[0] for r in await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", list(API_ROLES))}
        assert roles == API_ROLES
        # The admin role's grants on the login tables went with the migration.
        assert not await conn.fetchval("SELECT has_table_privilege('centrid_admin', 'public.piccolo_user', 'SELECT')")

        ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn))
        assert await catalog_state(conn) == FULL
        await rls_works(empty_dsn, conn)
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# Scratch copies of the project with an extra migration


def scratch_project(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    shutil.copytree(REPO / "centrid", root / "centrid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "piccolo_conf.py", root / "piccolo_conf.py")
    return root


def add_migration(root: Path, migration_id: str, steps: list[str], description: str) -> None:
    filename = "centrid_" + migration_id.replace("-", "_").replace(":", "_").lower() + ".py"
    body = textwrap.dedent(
        '''\
        """{description} (written by tests/test_migrations.py)"""

        from centrid.db.migrations import SerializedMigrationManager, sql_step

        ID = "{migration_id}"
        VERSION = "1.38.0"
        DESCRIPTION = "{description}"

        STEPS = {steps!r}


        async def forwards() -> SerializedMigrationManager:
            manager = SerializedMigrationManager(migration_id=ID, app_name="centrid", description=DESCRIPTION)
            for sql in STEPS:
                manager.add_raw(sql_step(sql))
            manager.add_raw_backwards(sql_step("SELECT 1"))
            return manager
        '''
    ).format(description=description, migration_id=migration_id, steps=steps)
    (root / "centrid" / "piccolo_migrations" / filename).write_text(body)


FAILING_ID = "2099-01-01T00:00:00:000001"  # after every real migration
HALF_DONE_SQL = r"""
CREATE TABLE public.half_done (id integer PRIMARY KEY, updated_at timestamptz);
ALTER TABLE public.half_done ENABLE ROW LEVEL SECURITY;
CREATE POLICY half_done_select ON public.half_done FOR SELECT TO authenticated USING (true);
CREATE TRIGGER half_done_touch BEFORE UPDATE ON public.half_done
    FOR EACH ROW EXECUTE FUNCTION public.centrid_touch_updated_at();
CREATE FUNCTION public.half_done_fn() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
ALTER TABLE public.documents ADD COLUMN half_done text;
INSERT INTO public.half_done (id) VALUES (1);
"""


async def test_failed_migration_leaves_no_trace(empty_dsn: str, tmp_path: Path) -> None:
    project = scratch_project(tmp_path, "failing")
    add_migration(project, FAILING_ID, [HALF_DONE_SQL, "SELECT 1/0"], "fails half-way")

    result = run_piccolo(["migrations", "forwards", "all"], empty_dsn, cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert FAILING_ID in output, output  # the scratch copy's code ran
    assert "division by zero" in output, output

    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM pg_policies WHERE policyname = 'half_done_select'") == 0
        assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'half_done_touch'") == 0
        assert await conn.fetchval("SELECT to_regproc('public.half_done_fn')") is None
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'documents' AND column_name = 'half_done'"
            )
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM migration WHERE name = $1", FAILING_ID) == 0
        # The earlier migrations, each its own transaction, are intact.
        assert await catalog_state(conn) == FULL
        assert await piccolo_app_records(conn) == PICCOLO_APP_MIGRATIONS
    finally:
        await conn.close()

    # Running it again fails the same way, from the same clean state.
    again = run_piccolo(["migrations", "forwards", "all"], empty_dsn, cwd=project)
    assert again.returncode != 0
    assert "division by zero" in again.stdout + again.stderr
    assert f"{FAILING_ID} [forwards]" in again.stdout + again.stderr


# --------------------------------------------------------------------------
# Two processes at once

SLOW_ID = "2099-01-01T00:00:00:000002"  # after every real migration
SLOW_STEPS = [
    "CREATE TABLE public.slow_marker (pid integer NOT NULL DEFAULT pg_backend_pid())",
    "SELECT pg_sleep(2)",
    "INSERT INTO public.slow_marker DEFAULT VALUES",
]

# The real CLI entry point (`python -m piccolo.main`), started only when the
# test says go, after both processes have imported everything: the two
# really start together, as two replicas booting at once would.
BARRIER_CLI = textwrap.dedent(
    """\
    import os, sys
    sys.path.insert(0, os.getcwd())
    import piccolo_conf
    import piccolo.main
    print("ready", flush=True)
    sys.stdin.readline()
    sys.argv = ["piccolo", "migrations", "forwards", "all"]
    piccolo.main.main()
    """
)

# The same run without the CLI's whole-run lock (argv is not `piccolo
# migrations ...`), so only SerializedMigrationManager's per-migration lock
# stands between the two processes.
BARRIER_NO_RUN_LOCK = textwrap.dedent(
    """\
    import asyncio, os, sys
    sys.path.insert(0, os.getcwd())
    import piccolo_conf
    from piccolo.apps.migrations.commands.forwards import run_forwards
    print("ready", flush=True)
    sys.stdin.readline()
    result = asyncio.run(run_forwards("all"))
    sys.exit(0 if result.success else 1)
    """
)


def forwards_all_together(
    project: Path, dsn: str, processes: int = 2, script: str = BARRIER_CLI
) -> list[tuple[int, str]]:
    import os

    env = {**os.environ, "DATABASE_URL": dsn}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=project,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == "ready", line + p.stdout.read()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        return [(p.returncode, out) for p, out in zip(procs, outputs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


async def assert_migrated_once(dsn: str, results: list[tuple[int, str]]) -> None:
    outputs = "\n----\n".join(out for _, out in results)
    assert [code for code, _ in results] == [0, 0], outputs
    # The scratch copy's code ran, and the slow migration was applied by one process only.
    assert sum(f"{SLOW_ID} [forwards]... ok!" in out for _, out in results) == 1, outputs
    conn = await asyncpg.connect(dsn)
    try:
        counts = await conn.fetch("SELECT app_name, name, count(*) AS n FROM migration GROUP BY 1, 2")
        assert {(r["app_name"], r["name"]): r["n"] for r in counts} == {
            **{key: 1 for key in PICCOLO_APP_MIGRATIONS},
            **{("centrid", name): 1 for name in [*CENTRID_MIGRATIONS, SLOW_ID]},
        }
        assert await conn.fetchval("SELECT count(*) FROM public.slow_marker") == 1
        state = await catalog_state(conn)
        assert state["public_tables"] == FULL["public_tables"] | {"slow_marker"}
        assert {k: v for k, v in state.items() if k not in ("public_tables", "centrid_records")} == {
            k: v for k, v in FULL.items() if k not in ("public_tables", "centrid_records")
        }
    finally:
        await conn.close()


async def test_two_processes_forwards_all_on_empty_database(empty_dsn: str, tmp_path: Path) -> None:
    """Two `piccolo migrations forwards all` at once: the CLI's run lock makes
    the second wait, then find nothing to do."""
    project = scratch_project(tmp_path, "slow")
    add_migration(project, SLOW_ID, SLOW_STEPS, "slow")
    results = forwards_all_together(project, empty_dsn)
    await assert_migrated_once(empty_dsn, results)
    assert sum(out.count("No migrations need to be run") == 3 for _, out in results) == 1


async def test_two_processes_serialize_centrid_migrations(empty_dsn: str, tmp_path: Path) -> None:
    """Without the run lock, with Piccolo's own apps (user, session_auth)
    migrated first: centrid's per-migration lock alone keeps the slow
    migration from being applied twice."""
    project = scratch_project(tmp_path, "slow")
    add_migration(project, SLOW_ID, SLOW_STEPS, "slow")
    ok(run_piccolo(["migrations", "forwards", "user"], empty_dsn, cwd=project))
    ok(run_piccolo(["migrations", "forwards", "session_auth"], empty_dsn, cwd=project))
    results = forwards_all_together(project, empty_dsn, script=BARRIER_NO_RUN_LOCK)
    await assert_migrated_once(empty_dsn, results)
    skipped = [out for _, out in results if f"{SLOW_ID}: already done by another process" in out]
    assert len(skipped) == 1, "\n----\n".join(out for _, out in results)


# --------------------------------------------------------------------------
# A database that already has Supabase's auth objects

SUPABASE_AUTH_SQL = r"""
CREATE SCHEMA auth;
COMMENT ON SCHEMA auth IS 'supabase auth';
CREATE TABLE auth.users (
    instance_id uuid,
    id uuid NOT NULL PRIMARY KEY,
    aud character varying(255),
    role character varying(255),
    email character varying(255),
    encrypted_password character varying(255),
    email_confirmed_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz,
    updated_at timestamptz
);
COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';
CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
AS $$
  select
  coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
COMMENT ON FUNCTION auth.uid() IS 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT ALL ON FUNCTION auth.uid() TO anon, authenticated, service_role;
INSERT INTO auth.users (id, aud, role, email, encrypted_password, instance_id)
VALUES ('00000000-0000-0000-0000-00000000abcd', 'authenticated', 'authenticated', 'old@example.test',
        '$2a$10$hash', '00000000-0000-0000-0000-000000000000');
"""


async def supabase_objects(conn: asyncpg.Connection) -> dict[str, Any]:
    return {
        "uid_source": await conn.fetchval("SELECT pg_get_functiondef('auth.uid()'::regprocedure)"),
        "uid_oid": await conn.fetchval("SELECT 'auth.uid()'::regprocedure::oid"),
        "uid_comment": await conn.fetchval("SELECT obj_description('auth.uid()'::regprocedure, 'pg_proc')"),
        "uid_config": await conn.fetchval("SELECT proconfig FROM pg_proc WHERE oid = 'auth.uid()'::regprocedure"),
        "uid_acl": await conn.fetchval("SELECT proacl::text FROM pg_proc WHERE oid = 'auth.uid()'::regprocedure"),
        "users_oid": await conn.fetchval("SELECT 'auth.users'::regclass::oid"),
        "users_comment": await conn.fetchval("SELECT obj_description('auth.users'::regclass, 'pg_class')"),
        "users_acl": await conn.fetchval("SELECT relacl::text FROM pg_class WHERE oid = 'auth.users'::regclass"),
        "users_columns": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = 'auth' AND table_name = 'users' ORDER BY ordinal_position"
            )
        ],
        "users_rows": [
            tuple(r) for r in await conn.fetch("SELECT id, aud, email, encrypted_password FROM auth.users WHERE email = 'old@example.test'")
        ],
        "schema_comment": await conn.fetchval("SELECT obj_description('auth'::regnamespace, 'pg_namespace')"),
        "schema_acl": await conn.fetchval("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'auth'"),
    }


async def test_supabase_auth_objects_are_used_untouched(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute(SUPABASE_AUTH_SQL)
        before = await supabase_objects(conn)
        assert len(before["users_columns"]) == 12 and before["users_rows"]

        ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn))
        assert await supabase_objects(conn) == before
        state = await catalog_state(conn)
        assert state["shim_comments"] == set()
        assert state["public_tables"] == FULL["public_tables"]
        assert state["triggers"] == FULL["triggers"]
        assert state["policy_count"] == FULL["policy_count"]
        assert state["centrid_records"] == CENTRID_MIGRATIONS
        # RLS through their auth.uid(); profiles through the trigger on their table.
        await rls_works(empty_dsn, conn)

        ok(run_piccolo(["migrations", "backwards", "centrid", "all", "--auto_agree"], empty_dsn))
        after = await supabase_objects(conn)
        assert after == before
        state = await catalog_state(conn)
        assert state["public_tables"] == INTERNAL_TABLES
        assert state["triggers"] == set()  # ours is gone from their auth.users
        assert state["functions"] == {"auth.uid"}
        assert state["centrid_records"] == []
        # Users created while migrated stay: they are theirs.
        assert await conn.fetchval("SELECT count(*) FROM auth.users") == 3
    finally:
        await conn.close()
