"""`piccolo centrid check`: a migrated database is clean; each kind of drift
is reported, on its own line, naming the table and column/policy/index/grant."""

from __future__ import annotations

import pytest
from piccolo.columns import UUID, Text
from piccolo.table import Table

from centrid.schema.drift import Difference, declaration_problems, find_drift
from centrid.schema.security import TableSecurity
from centrid.schema.tables import SECURITY, TABLE_CLASSES
from tests.conftest import MigratedDB
from tests.support import run_piccolo

OWNER_CHECK = "(user_id = ( SELECT auth.uid() AS uid))"


def check(dsn: str) -> tuple[int, list[str], str]:
    result = run_piccolo(["centrid", "check"], dsn)
    return result.returncode, result.stdout.splitlines(), result.stdout + result.stderr


async def test_fresh_database_is_clean(db: MigratedDB) -> None:
    code, lines, output = check(db.dsn)
    assert code == 0, output
    assert len(lines) == 1 and lines[0].startswith("OK"), output


async def test_drift_function_finds_nothing_and_changes_nothing(db: MigratedDB) -> None:
    before = await db.owner.fetchval("SELECT count(*) FROM pg_class")
    assert await find_drift(db.owner, TABLE_CLASSES, SECURITY) == []
    assert not db.owner.is_in_transaction()
    assert await db.owner.fetchval("SELECT count(*) FROM pg_class") == before


# (id, SQL run as the owner, the exact lines `check` must print)
DRIFTS = [
    (
        "dropped-not-null",
        "ALTER TABLE documents ALTER COLUMN filename DROP NOT NULL",
        ["documents.filename: expected not null, found null"],
    ),
    (
        "changed-type",
        "ALTER TABLE documents ALTER COLUMN file_size TYPE bigint",
        ["documents.file_size: expected type integer, found bigint"],
    ),
    (
        "dropped-declared-index",
        "DROP INDEX documents_user_created_idx",
        ["documents: index documents_user_created_idx: expected btree (user_id, created_at DESC, id DESC), found none"],
    ),
    (
        "dropped-piccolo-index",
        "DROP INDEX usage_events_event_type",
        ["usage_events: index usage_events_event_type: expected btree (event_type), found none"],
    ),
    (
        "dropped-policy",
        "DROP POLICY documents_update_own ON documents",
        [
            "documents: policy documents_update_own: expected PERMISSIVE FOR UPDATE TO authenticated "
            f"USING ({OWNER_CHECK}) WITH CHECK ({OWNER_CHECK}), found none"
        ],
    ),
    (
        "weakened-policy",
        "DROP POLICY agent_sessions_select_own ON agent_sessions; "
        "CREATE POLICY agent_sessions_select_own ON agent_sessions FOR SELECT TO authenticated, anon USING (true)",
        [
            "agent_sessions: policy agent_sessions_select_own: expected TO authenticated, found TO anon, authenticated",
            f"agent_sessions: policy agent_sessions_select_own: expected USING ({OWNER_CHECK}), found USING (true)",
        ],
    ),
    (
        "policy-without-with-check",
        "ALTER POLICY documents_update_own ON documents WITH CHECK (true)",
        [
            f"documents: policy documents_update_own: expected WITH CHECK ({OWNER_CHECK}), found WITH CHECK (true)",
        ],
    ),
    (
        "extra-policy",
        "CREATE POLICY sneaky ON usage_events FOR SELECT TO anon USING (true)",
        ["usage_events: policy sneaky: expected none, found PERMISSIVE FOR SELECT TO anon USING (true)"],
    ),
    (
        "rls-disabled",
        "ALTER TABLE agent_requests DISABLE ROW LEVEL SECURITY",
        ["agent_requests: rls: expected row level security enabled, found disabled"],
    ),
    (
        "extra-grant",
        "GRANT INSERT ON documents TO anon",
        ["documents: grant INSERT to anon: expected not granted, found granted"],
    ),
    (
        "extra-public-grant",
        "GRANT SELECT ON usage_events TO PUBLIC",
        ["usage_events: grant SELECT to PUBLIC: expected not granted, found granted"],
    ),
    (
        "extra-column-grant",
        "GRANT UPDATE (plan_type) ON user_profiles TO authenticated",
        ["user_profiles: grant UPDATE (plan_type) to authenticated: expected not granted, found granted"],
    ),
    (
        "missing-grant",
        "REVOKE UPDATE (name) ON user_profiles FROM authenticated",
        ["user_profiles: grant UPDATE (name) to authenticated: expected granted, found not granted"],
    ),
    (
        "missing-table-grant",
        "REVOKE DELETE ON documents FROM service_role",
        ["documents: grant DELETE to service_role: expected granted, found not granted"],
    ),
    (
        "dropped-owner-default",
        "ALTER TABLE usage_events ALTER COLUMN user_id DROP DEFAULT",
        ["usage_events.user_id: expected default auth.uid(), found no default"],
    ),
    (
        "changed-default",
        "ALTER TABLE user_profiles ALTER COLUMN plan_type SET DEFAULT 'pro'",
        ["user_profiles.plan_type: expected default 'free'::text, found default 'pro'::text"],
    ),
    (
        "dropped-tsvector",
        "ALTER TABLE document_chunks DROP COLUMN search_vector",
        [
            "document_chunks.search_vector: expected column tsvector null generated always as "
            "(to_tsvector('english'::regconfig, COALESCE(content, ''::text))) stored, found none",
            "document_chunks: index document_chunks_search_vector_idx: expected gin (search_vector), found none",
        ],
    ),
    (
        "extra-column",
        "ALTER TABLE documents ADD COLUMN secret text",
        ["documents.secret: expected no such column, found column text null"],
    ),
    (
        "changed-check",
        "ALTER TABLE document_chunks DROP CONSTRAINT document_chunks_chunk_index_check; "
        "ALTER TABLE document_chunks ADD CONSTRAINT document_chunks_chunk_index_check CHECK (chunk_index >= -1)",
        [
            "document_chunks: constraint document_chunks_chunk_index_check: "
            "expected CHECK ((chunk_index >= 0)), found CHECK ((chunk_index >= '-1'::integer))"
        ],
    ),
    (
        "dropped-unique",
        "ALTER TABLE user_profiles DROP CONSTRAINT user_profiles_user_id_key",
        ["user_profiles: constraint user_profiles_user_id_key: expected UNIQUE (user_id), found none"],
    ),
    (
        "changed-on-delete",
        "ALTER TABLE agent_sessions DROP CONSTRAINT agent_sessions_user_id_fkey; "
        "ALTER TABLE agent_sessions ADD FOREIGN KEY (user_id) REFERENCES auth.users (id) "
        "ON DELETE SET NULL ON UPDATE CASCADE",
        [
            "agent_sessions.user_id: expected REFERENCES auth.users(id) ON DELETE CASCADE ON UPDATE CASCADE, "
            "found REFERENCES auth.users(id) ON DELETE SET NULL ON UPDATE CASCADE"
        ],
    ),
    (
        "dropped-trigger",
        "DROP TRIGGER documents_touch_updated_at ON documents",
        [
            "documents: trigger documents_touch_updated_at: expected BEFORE UPDATE FOR EACH ROW "
            "EXECUTE FUNCTION public.centrid_touch_updated_at(), found none"
        ],
    ),
    (
        "internal-table-grant",
        "GRANT SELECT ON piccolo_user TO anon",
        ["piccolo_user: grant SELECT to anon: expected not granted, found granted"],
    ),
    (
        "undeclared-table",
        "CREATE TABLE public.rogue (id int)",
        ["rogue: expected no such table (no table class declares it), found a table"],
    ),
    (
        "missing-table",
        "DROP TABLE agent_sessions",
        ["agent_sessions: expected table, found none"],
    ),
]


@pytest.mark.parametrize("sql,lines", [pytest.param(sql, lines, id=name) for name, sql, lines in DRIFTS])
async def test_drift_is_reported(db: MigratedDB, sql: str, lines: list[str]) -> None:
    await db.owner.execute(sql)
    code, found, output = check(db.dsn)
    assert code == 1, output
    assert found == lines, output


async def test_every_difference_is_reported_at_once(db: MigratedDB) -> None:
    await db.owner.execute(
        "ALTER TABLE documents ALTER COLUMN filename DROP NOT NULL; "
        "ALTER TABLE agent_requests DISABLE ROW LEVEL SECURITY; "
        "GRANT INSERT ON documents TO anon"
    )
    code, found, output = check(db.dsn)
    assert code == 1, output
    assert found == [
        "documents.filename: expected not null, found null",
        "documents: grant INSERT to anon: expected not granted, found granted",
        "agent_requests: rls: expected row level security enabled, found disabled",
    ], output


class Scratch(Table, tablename="drift_scratch"):
    id = UUID(primary_key=True)
    body = Text(null=False, default=None)


async def test_table_without_declaration_is_reported(db: MigratedDB) -> None:
    await db.owner.execute(
        "CREATE TABLE public.drift_scratch (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text NOT NULL)"
    )
    diffs = await find_drift(db.owner, [*TABLE_CLASSES, Scratch], SECURITY)
    assert diffs == [
        Difference(
            "drift_scratch", "declaration", "", "a TableSecurity declaration (centrid.schema.tables.SECURITY)", "none"
        )
    ]
    assert str(diffs[0]) == (
        "drift_scratch: expected a TableSecurity declaration (centrid.schema.tables.SECURITY), found none"
    )
    # Not created at all: both the declaration and the table are reported.
    await db.owner.execute("DROP TABLE public.drift_scratch")
    diffs = await find_drift(db.owner, [*TABLE_CLASSES, Scratch], SECURITY)
    assert [str(d) for d in diffs] == [
        "drift_scratch: expected a TableSecurity declaration (centrid.schema.tables.SECURITY), found none",
        "drift_scratch: expected table, found none",
    ]


def test_declaration_without_registered_table_is_reported() -> None:
    orphan = TableSecurity(table=Scratch, policies=(), grants=())
    assert [str(d) for d in declaration_problems(TABLE_CLASSES, (*SECURITY, orphan))] == [
        "drift_scratch: expected its table class registered in the centrid app (APP_CONFIG.table_classes), "
        "found a TableSecurity declaration only"
    ]
    assert declaration_problems(TABLE_CLASSES, SECURITY) == []


async def test_broken_declaration_is_reported_not_raised(db: MigratedDB) -> None:
    """A declared expression PostgreSQL rejects is itself a difference."""
    from dataclasses import replace

    from centrid.schema.security import Policy

    docs = next(s for s in SECURITY if s.tablename == "documents")
    bad = replace(docs, policies=(*docs.policies, Policy("documents_bad", "SELECT", ("authenticated",), using="no_such_column = 1")))
    diffs = await find_drift(db.owner, TABLE_CLASSES, [bad if s is docs else s for s in SECURITY])
    assert [(d.table, d.kind, d.name) for d in diffs] == [
        ("documents", "policy", "documents_bad"),
    ]
    assert 'column "no_such_column" does not exist' in diffs[0].found
