"""docs/ADDING_A_TABLE.md, end to end, in a scratch copy of the project:
write a table and its security, register them, `piccolo centrid
new_migration`, `piccolo migrations forwards all` on an empty database,
`piccolo centrid check`; then change the declaration and go round again."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support import REPO, acting_as, create_user, run_piccolo

NOTES_MODULE = '''\
"""`notes`: a throwaway table for the add-a-table test."""

from piccolo.columns import UUID, Text
from piccolo.table import Table

from centrid.schema.security import Grant, TableSecurity, owned_by_caller, service_grants
from centrid.schema.tables.columns import created_at, owner, updated_at


class Note(Table, tablename="notes"):
    id = UUID(primary_key=True)
    user_id = owner()
    body = Text(null=False, default=None)
    created_at = created_at()
    updated_at = updated_at()


NOTE_SECURITY = TableSecurity(
    table=Note,
    owned_by=owned_by_caller(),
    writable=("INSERT", "UPDATE", "DELETE"),
    grants=(
        Grant("authenticated", ("SELECT", "DELETE")),
        Grant("authenticated", ("INSERT",), columns=("user_id", "body")),
        Grant("authenticated", ("UPDATE",), columns=("body",)),
        *service_grants(),
    ),
    owner_default="user_id",
)
'''

def register(init: Path) -> None:
    """docs/ADDING_A_TABLE.md step 2: the declaration joins the registry."""
    text = init.read_text()
    last = "    USAGE_SECURITY,\n)"
    assert last in text, "the registry's last entry moved: update this test and the doc"
    text = text.replace(last, "    USAGE_SECURITY,\n    NOTE_SECURITY,\n)")
    text = text.replace(
        "from centrid.schema.tables.usage import",
        "from centrid.schema.tables.notes import NOTE_SECURITY\nfrom centrid.schema.tables.usage import",
    )
    init.write_text(text)


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(REPO / "centrid", project / "centrid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "piccolo_conf.py", project / "piccolo_conf.py")
    return project


def migration_files(project: Path) -> set[str]:
    return {p.name for p in (project / "centrid" / "piccolo_migrations").glob("centrid_*.py")}


def constants(path: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_add_a_table(tmp_path: Path, empty_dsn: str) -> None:
    project = copy_project(tmp_path)
    migrations = project / "centrid" / "piccolo_migrations"
    main_migrations = migration_files(REPO)

    # The CLI run from the copy uses the copy's code, not the checkout's.
    where = subprocess.run(
        [sys.executable, "-c", "import centrid, piccolo_conf; print(centrid.__file__); print(piccolo_conf.__file__)"],
        cwd=project,
        env={**os.environ, "DATABASE_URL": empty_dsn},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.split() == [str(project / "centrid" / "__init__.py"), str(project / "piccolo_conf.py")]

    # 1. The class and its security, beside each other.
    (project / "centrid" / "schema" / "tables" / "notes.py").write_text(NOTES_MODULE)
    init = project / "centrid" / "schema" / "tables" / "__init__.py"

    # Written but not yet in the registry: Piccolo would never see the
    # class, so nothing is written and the missing entry is named.
    before = migration_files(project)
    result = run_piccolo(["centrid", "new_migration"], empty_dsn, cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "notes: expected a TableSecurity declaration (centrid.schema.tables.SECURITY), found none" in result.stdout
    assert migration_files(project) == before

    # 2. Registered.
    register(init)

    # 3. The migrations: Piccolo's auto migration (serialized) and one for
    # the new table's security only.
    out = ok(run_piccolo(["centrid", "new_migration"], empty_dsn, cwd=project))
    new = sorted(migration_files(project) - before)
    assert len(new) == 2, out
    auto, security = (migrations / name for name in new)
    auto_text = auto.read_text()
    assert "from centrid.db.migrations import SerializedMigrationManager as MigrationManager" in auto_text
    assert 'tablename="notes"' in auto_text
    sec = constants(security)
    assert str(sec["ID"]) > str(constants(auto)["ID"])
    forwards = str(sec["FORWARDS_SQL"])
    assert "ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;" in forwards
    assert "CREATE POLICY notes_insert_own ON public.notes" in forwards
    assert "public.documents" not in forwards and "centrid_touch_updated_at() RETURNS" not in forwards
    snapshot = sec["SECURITY_SNAPSHOT"]
    assert isinstance(snapshot, dict) and list(snapshot)[-1] == "notes" and "documents" in snapshot
    assert migration_files(REPO) == main_migrations  # the checkout is untouched

    # Nothing changed since: nothing written.
    out = ok(run_piccolo(["centrid", "new_migration"], empty_dsn, cwd=project))
    assert "Nothing changed; no migration written." in out
    assert len(migration_files(project) - before) == 2

    # 4. Apply, on an empty database.
    ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn, cwd=project))

    # 5. Check: clean with the copy's code; the checkout's code does not
    # know `notes`, which shows the copy is what was checked.
    assert ok(run_piccolo(["centrid", "check"], empty_dsn, cwd=project)).startswith("OK")
    main_check = run_piccolo(["centrid", "check"], empty_dsn)
    assert main_check.returncode == 1
    assert main_check.stdout.splitlines() == ["notes: expected no such table (no table class declares it), found a table"]

    # The table is protected by the database.
    owner = await asyncpg.connect(empty_dsn)
    try:
        assert await owner.fetchval("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass")
        policies = await owner.fetch("SELECT policyname FROM pg_policies WHERE tablename = 'notes' ORDER BY 1")
        assert [r["policyname"] for r in policies] == [
            "notes_delete_own",
            "notes_insert_own",
            "notes_select_own",
            "notes_update_own",
        ]
        alice = await create_user(owner)
        bob = await create_user(owner)
    finally:
        await owner.close()

    async with acting_as(empty_dsn, "authenticated", alice, commit=True) as conn:
        # user_id defaults to auth.uid()
        row = await conn.fetchrow("INSERT INTO notes (body) VALUES ('alice only') RETURNING user_id::text")
        assert row is not None and row["user_id"] == alice
    async with acting_as(empty_dsn, "authenticated", bob) as conn:
        assert await conn.fetch("SELECT * FROM notes") == []
        assert await conn.execute("UPDATE notes SET body = 'bob was here'") == "UPDATE 0"
    async with acting_as(empty_dsn, "authenticated", bob) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("INSERT INTO notes (user_id, body) VALUES ($1, 'for alice')", alice)
    async with acting_as(empty_dsn, "authenticated", alice) as conn:
        assert [r["body"] for r in await conn.fetch("SELECT body FROM notes")] == ["alice only"]
        # Moving a row to someone else is refused (WITH CHECK).
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE notes SET user_id = $1", bob)
    async with acting_as(empty_dsn, "anon") as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM notes")

    # Changing the declaration: only `notes` is re-rendered, old backwards
    # SQL first, and backwards restores exactly the previous state.
    notes = project / "centrid" / "schema" / "tables" / "notes.py"
    notes.write_text(
        notes.read_text()
        .replace("import Grant,", "import GeneratedTsvector, Grant, Index,")
        .replace(
            '    owner_default="user_id",\n)',
            '    owner_default="user_id",\n'
            '    tsvector=GeneratedTsvector(column="search_vector", source="body"),\n'
            '    indexes=(Index("notes_search_vector_idx", "(search_vector)", method="gin"),),\n)',
        )
    )
    before_change = migration_files(project)
    drifted = run_piccolo(["centrid", "check"], empty_dsn, cwd=project)
    assert drifted.returncode == 1
    assert drifted.stdout.splitlines() == [
        "notes.search_vector: expected column tsvector null generated always as "
        "(to_tsvector('english'::regconfig, COALESCE(body, ''::text))) stored, found none",
        "notes: index notes_search_vector_idx: expected gin (search_vector), found none",
    ]
    out = ok(run_piccolo(["centrid", "new_migration"], empty_dsn, cwd=project))
    assert "Table classes: no changes." in out
    (changed,) = migration_files(project) - before_change
    sec = constants(migrations / changed)
    forwards = str(sec["FORWARDS_SQL"])
    assert "user_profiles" not in forwards and "documents" not in forwards
    assert forwards.index("DROP POLICY IF EXISTS notes_select_own") < forwards.index("ADD COLUMN search_vector")
    assert forwards.index("ADD COLUMN search_vector") < forwards.index("CREATE POLICY notes_select_own")

    ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn, cwd=project))
    assert ok(run_piccolo(["centrid", "check"], empty_dsn, cwd=project)).startswith("OK")
    async with acting_as(empty_dsn, "authenticated", alice) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notes WHERE search_vector @@ to_tsquery('english', 'alice')") == 1

    ok(run_piccolo(["migrations", "backwards", "centrid", "--auto_agree"], empty_dsn, cwd=project))
    assert run_piccolo(["centrid", "check"], empty_dsn, cwd=project).stdout.splitlines() == drifted.stdout.splitlines()
    async with acting_as(empty_dsn, "authenticated", bob) as conn:
        assert await conn.fetch("SELECT * FROM notes") == []  # still protected after backwards


def test_new_migration_writes_nothing_for_the_current_tree(tmp_path: Path, empty_dsn: str) -> None:
    """The declarations render byte for byte what the latest snapshot holds,
    and the table classes what the migrations created: a rewrite of the
    renderer, the registry or the CHECKs that changed either would show here."""
    project = copy_project(tmp_path)
    before = migration_files(project)
    out = ok(run_piccolo(["centrid", "new_migration"], empty_dsn, cwd=project))
    assert "Nothing changed; no migration written." in out, out
    assert migration_files(project) == before
