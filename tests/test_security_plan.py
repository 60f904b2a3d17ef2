"""Security planning and rendering, without a database: what `piccolo centrid
new_migration` would write (centrid.schema.plan) and what `check` replays
(centrid.schema.render.table_statements)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from piccolo.columns import UUID, Text
from piccolo.table import Table

from centrid.api.db_errors import _field_of
from centrid.schema.plan import (
    apply_sql,
    latest_snapshot,
    plan_security,
    read_snapshot,
    removal_sql,
    render_snapshot,
)
from centrid.schema.registry import declaration_problems, unregistered_tables
from centrid.schema.render import table_forwards_sql, table_statements
from centrid.schema.security import ColumnStorage, Grant, TableSecurity, TableStorage, owned_by_caller
from centrid.schema.tables import SECURITY, TABLE_CLASSES, TABLE_NAMES
from centrid.schema.tables.columns import Vector, one_of


class Memo(Table, tablename="memos"):
    id = UUID(primary_key=True)
    body = Text(null=False, default=None)


MEMO = TableSecurity(
    table=Memo,
    owned_by="owner_id = (select auth.uid())",
    writable=("INSERT", "DELETE"),
    grants=(Grant("authenticated", ("SELECT",)),),
    touch_updated_at=False,
)


# --- the registry ------------------------------------------------------------------------


def test_table_classes_and_names_follow_the_registry_in_order() -> None:
    assert TABLE_CLASSES == [sec.table for sec in SECURITY]
    assert TABLE_NAMES == tuple(sec.tablename for sec in SECURITY)
    assert unregistered_tables(TABLE_CLASSES) == []
    assert declaration_problems(TABLE_CLASSES, SECURITY) == []


def test_a_table_class_left_out_of_the_registry_is_found() -> None:
    missing = unregistered_tables([c for c in TABLE_CLASSES if c._meta.tablename != "usage_events"])
    assert [c._meta.tablename for c in missing] == ["usage_events"]
    # auth.users is described for foreign keys, never migrated: not "missing".
    assert all((c._meta.schema or "public") == "public" for c in missing)


def test_a_declaration_twice_is_a_problem() -> None:
    assert [str(d) for d in declaration_problems(TABLE_CLASSES, (*SECURITY, SECURITY[0]))] == [
        "user_profiles: expected one TableSecurity declaration, found 2"
    ]


# --- owner policies and allowed values -----------------------------------------------------


def test_owner_policies_are_named_after_the_table() -> None:
    assert [(p.name, p.command) for p in MEMO.policies] == [
        ("memos_select_own", "SELECT"),
        ("memos_insert_own", "INSERT"),
        ("memos_delete_own", "DELETE"),
    ]
    insert = MEMO.policies[1]
    assert insert.using is None and insert.with_check == "owner_id = (select auth.uid())"
    # replace() keeps the derived policies once (owned_by is not re-applied).
    assert dataclasses.replace(MEMO, touch_updated_at=True).policies == MEMO.policies


def test_writable_without_an_owner_predicate_is_refused() -> None:
    with pytest.raises(ValueError, match="memos: `writable` needs `owned_by`"):
        TableSecurity(table=Memo, grants=(), writable=("INSERT",))


def test_one_of_renders_the_check_from_the_literal() -> None:
    check = one_of("colour", Literal["red", "green"])
    assert check._meta.params == {"condition": "colour IN ('red', 'green')"}
    with pytest.raises(TypeError):
        one_of("colour", str)


def test_constraint_names_of_every_registered_table_name_their_column() -> None:
    for table in TABLE_NAMES:
        exc = asyncpg.exceptions.CheckViolationError("x")
        exc.constraint_name = f"{table}_some_column_check"
        assert _field_of(exc) == "some_column", table
    exc = asyncpg.exceptions.CheckViolationError("x")
    exc.constraint_name = "elsewhere_some_column_check"
    assert _field_of(exc) is None


# --- one renderer for migrations and check ------------------------------------------------


def test_check_replays_the_migration_statements_on_the_pg_temp_copy() -> None:
    for sec in SECURITY:
        public = [s.sql for s in table_statements(sec)]
        temp = [s.sql for s in table_statements(sec, schema="pg_temp")]
        assert [s.replace(f"public.{sec.tablename}", f"pg_temp.{sec.tablename}") for s in public] == temp
        assert table_forwards_sql(sec) == "\n".join([f"-- {sec.tablename}", *public])


def test_statements_name_what_they_create() -> None:
    kinds = {(s.kind, s.name) for s in table_statements(SECURITY[1])}  # documents
    assert ("policy", "documents_update_own") in kinds
    assert ("index", "documents_search_vector_idx") in kinds
    assert ("column", "search_vector") in kinds and ("column", "user_id") in kinds
    assert ("trigger", "documents_touch_updated_at") in kinds and ("rls", "") in kinds


# --- planning --------------------------------------------------------------------------


def test_plan_sorts_tables_into_added_changed_and_removed() -> None:
    previous = render_snapshot(SECURITY[:3])
    memo_snapshot = render_snapshot([MEMO])
    changed_docs = dataclasses.replace(SECURITY[1], touch_updated_at=False)
    current = render_snapshot([SECURITY[0], changed_docs, MEMO])
    plan = plan_security(previous, current)
    assert plan.added == ["memos"]
    assert plan.changed == ["documents"]
    # A removed table's column storage goes with it.
    assert plan.removed == ["document_chunks", "storage:document_chunks"]
    assert not plan.empty
    assert plan_security(current, current).empty
    assert memo_snapshot["memos"] == current["memos"]


def test_column_storage_is_planned_apart_from_the_tables_security() -> None:
    """Changing how a column is stored must not drop and rebuild the
    table's policies, columns and indexes (its HNSW index takes minutes to
    build at a million chunks): it plans one ALTER."""
    chunks = next(sec for sec in SECURITY if sec.tablename == "document_chunks")
    plan = plan_security(render_snapshot([dataclasses.replace(chunks, storage=None)]), render_snapshot([chunks]))
    assert (plan.added, plan.changed, plan.removed) == (["storage:document_chunks"], [], [])
    forwards, backwards = apply_sql(plan, include_removed=False)
    assert forwards == (
        "-- document_chunks: storage (embedding vector(384), search_vector tsvector)\n"
        "ALTER TABLE public.document_chunks ALTER COLUMN embedding SET STORAGE MAIN;\n"
        "ALTER TABLE public.document_chunks ALTER COLUMN search_vector SET STORAGE MAIN;\n"
        "ALTER TABLE public.document_chunks SET (toast_tuple_target = 4080);\n"
    )
    assert "SET STORAGE %s" in backwards and "RESET (toast_tuple_target)" in backwards and "DROP" not in backwards


def test_a_rebuilt_tables_storage_is_applied_again() -> None:
    """A changed table's security is dropped and rebuilt, its generated
    tsvector column with it, which comes back with its type's storage:
    the unchanged storage entry must run again after it."""
    chunks = next(sec for sec in SECURITY if sec.tablename == "document_chunks")
    plan = plan_security(render_snapshot([chunks]), render_snapshot([dataclasses.replace(chunks, grants=chunks.grants[1:])]))
    assert plan.changed == ["document_chunks", "storage:document_chunks"]
    forwards, _ = apply_sql(plan, include_removed=False)
    assert forwards.index("ADD COLUMN search_vector") < forwards.rindex("search_vector SET STORAGE MAIN")


class WiderChunk(Table, tablename="document_chunks"):
    embedding = Vector(dimensions=512, null=True)


def test_a_new_column_type_replans_its_storage() -> None:
    """ALTER COLUMN ... TYPE resets a column to its type's storage, so a new
    embedding dimension must bring the storage ALTER back after it."""
    chunks = next(sec for sec in SECURITY if sec.tablename == "document_chunks")
    plan = plan_security(render_snapshot([chunks]), render_snapshot([dataclasses.replace(chunks, table=WiderChunk)]))
    assert plan.changed == ["storage:document_chunks"]
    forwards, _ = apply_sql(plan, include_removed=False)
    assert "-- document_chunks: storage (embedding vector(512), search_vector tsvector)\n" in forwards


def test_storage_for_a_column_the_table_lacks_is_a_problem() -> None:
    chunks = next(sec for sec in SECURITY if sec.tablename == "document_chunks")
    wrong = dataclasses.replace(chunks, storage=TableStorage(columns=(ColumnStorage("embeding", "main"),)))
    problems = [str(p) for p in declaration_problems(TABLE_CLASSES, [*(s for s in SECURITY if s is not chunks), wrong])]
    assert problems == [
        "document_chunks: expected storage declared for its own columns, found storage for embeding, which it does not have"
    ]


def test_a_toast_target_postgresql_would_refuse_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="128 to 8160"):
        TableStorage(toast_tuple_target=9000)


def test_extensions_are_planned_but_never_removed() -> None:
    previous = render_snapshot(SECURITY)
    assert "extension:vector" in previous and list(previous)[0] == "extension:vector"
    plan = plan_security(previous, render_snapshot([MEMO]))
    assert "extension:vector" not in plan.removed
    assert "documents" in plan.removed


def test_a_changed_table_runs_its_old_backwards_first_and_undoes_in_reverse() -> None:
    docs = SECURITY[1]
    changed = dataclasses.replace(docs, touch_updated_at=False)
    previous, current = render_snapshot([docs]), render_snapshot([changed])
    forwards, backwards = apply_sql(plan_security(previous, current), include_removed=False)
    old_f, old_b = previous["documents"]
    new_f, new_b = current["documents"]
    assert forwards.index(old_b) < forwards.index(new_f)
    assert backwards.index(new_b) < backwards.index(old_f)
    assert "centrid_touch_updated_at() RETURNS" not in forwards  # shared functions only on request


def test_removed_tables_take_their_security_off_in_either_migration() -> None:
    previous = render_snapshot([SECURITY[0], MEMO])
    plan = plan_security(previous, render_snapshot([SECURITY[0]]))
    forwards, backwards = removal_sql(plan)
    assert forwards == "-- memos: removed\n" + previous["memos"][1] + "\n"
    assert backwards == "-- memos: removed\n" + previous["memos"][0] + "\n"
    # Without an auto migration to run before, the removal joins the main one.
    with_removed, _ = apply_sql(plan, include_removed=True)
    assert "DROP POLICY IF EXISTS memos_select_own ON public.memos;" in with_removed
    without, _ = apply_sql(plan, include_removed=False)
    assert "memos" not in without


def test_snapshots_are_read_from_files_without_importing_them(tmp_path: Path) -> None:
    snapshot = render_snapshot([MEMO])
    for name, migration_id, body in (
        ("a.py", "2026-01-01T00:00:00:000001", f"SECURITY_SNAPSHOT = {snapshot!r}\nimport no_such_module\n"),
        ("b.py", "2026-01-02T00:00:00:000001", "raise SystemExit('never imported')\n"),
        ("c.py", "2025-12-31T00:00:00:000001", "SECURITY_SNAPSHOT = {}\n"),
    ):
        (tmp_path / name).write_text(f'ID = "{migration_id}"\n{body}')
    assert read_snapshot(tmp_path / "b.py") == ("2026-01-02T00:00:00:000001", None)
    path, latest = latest_snapshot(tmp_path)
    assert path == tmp_path / "a.py" and latest == snapshot
    (tmp_path / "d.py").write_text('ID = "2026-02-01T00:00:00:000001"\nSECURITY_SNAPSHOT = {"t": ("only one",)}\n')
    with pytest.raises(ValueError, match="is not \\(forwards, backwards\\) SQL"):
        latest_snapshot(tmp_path)
    assert latest_snapshot(tmp_path / "nothing-here") == (None, {})
