"""The migrated schema is the one DESIGN.md describes.

Expected values are written out here, not derived from the table classes or
security declarations: a test that reads the declarations would only prove
that the migrations did what the declarations said.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import MigratedDB
from tests.rls_support import (
    SIX_TABLES,
    insert_chunk,
    insert_document,
    insert_request,
    module_db,
    seed_user_rows,
)
from tests.support import acting_as, create_user

__all__ = ["module_db"]

NOW = "CURRENT_TIMESTAMP"  # how PostgreSQL shows a `now()` default
UID = "auth.uid()"
GEN_UUID = "gen_random_uuid()"

# column -> (data_type, nullable, default)
EXPECTED_COLUMNS: dict[str, dict[str, tuple[str, bool, str | None]]] = {
    "user_profiles": {
        "id": ("uuid", False, GEN_UUID),
        "user_id": ("uuid", False, UID),
        "name": ("text", True, None),
        "plan_type": ("text", False, "'free'::text"),
        "usage_count": ("integer", False, "0"),
        "subscription_status": ("text", False, "'active'::text"),
        "created_at": ("timestamp with time zone", False, NOW),
        "updated_at": ("timestamp with time zone", False, NOW),
    },
    "documents": {
        "id": ("uuid", False, GEN_UUID),
        "user_id": ("uuid", False, UID),
        "filename": ("text", False, None),
        "file_type": ("text", False, None),
        "file_size": ("integer", False, None),
        "processing_status": ("text", False, "'pending'::text"),
        "content_text": ("text", True, None),
        "search_vector": ("tsvector", True, None),
        "storage_path": ("text", True, None),
        "created_at": ("timestamp with time zone", False, NOW),
        "updated_at": ("timestamp with time zone", False, NOW),
    },
    "document_chunks": {
        "id": ("uuid", False, GEN_UUID),
        "document_id": ("uuid", False, None),
        "chunk_index": ("integer", False, None),
        "content": ("text", False, None),
        "section_title": ("text", True, None),
        "search_vector": ("tsvector", True, None),
        # The document's owner, kept by the database (no default: a trigger sets it).
        "user_id": ("uuid", False, None),
        "embedding": ("USER-DEFINED", True, "NULL::extensions.vector"),
        "created_at": ("timestamp with time zone", False, NOW),
    },
    "agent_requests": {
        "id": ("uuid", False, GEN_UUID),
        "user_id": ("uuid", False, UID),
        "agent_type": ("text", False, None),
        "content": ("text", False, None),
        "status": ("text", False, "'pending'::text"),
        "progress": ("real", False, "0.0"),
        "results": ("jsonb", True, None),
        "token_cost": ("integer", True, None),
        "created_at": ("timestamp with time zone", False, NOW),
        "updated_at": ("timestamp with time zone", False, NOW),
    },
    "agent_sessions": {
        "id": ("uuid", False, GEN_UUID),
        "user_id": ("uuid", False, UID),
        "request_chain": ("jsonb", False, "'[]'::jsonb"),
        "context_state": ("jsonb", True, None),
        "created_at": ("timestamp with time zone", False, NOW),
        "updated_at": ("timestamp with time zone", False, NOW),
    },
    "usage_events": {
        "id": ("uuid", False, GEN_UUID),
        "user_id": ("uuid", False, UID),
        "event_type": ("text", False, None),
        "tokens_used": ("integer", True, None),
        # Money is exact (DESIGN.md); a typmod'd NULL default is stored as such.
        "cost": ("numeric", True, "NULL::numeric"),
        "metadata": ("jsonb", True, None),
        "created_at": ("timestamp with time zone", False, NOW),
    },
}

EXPECTED_CHECKS = {
    ("user_profiles", "user_profiles_plan_type_check"): "CHECK ((plan_type = ANY (ARRAY['free'::text, 'pro'::text, 'enterprise'::text])))",
    ("user_profiles", "user_profiles_subscription_status_check"): "CHECK ((subscription_status = ANY (ARRAY['active'::text, 'cancelled'::text, 'expired'::text])))",
    ("user_profiles", "user_profiles_usage_count_check"): "CHECK ((usage_count >= 0))",
    ("documents", "documents_processing_status_check"): "CHECK ((processing_status = ANY (ARRAY['pending'::text, 'processing'::text, 'completed'::text, 'failed'::text])))",
    ("documents", "documents_file_size_check"): "CHECK ((file_size > 0))",
    ("document_chunks", "document_chunks_chunk_index_check"): "CHECK ((chunk_index >= 0))",
    ("document_chunks", "document_chunks_content_check"): "CHECK ((content <> ''::text))",
    ("agent_requests", "agent_requests_agent_type_check"): "CHECK ((agent_type = ANY (ARRAY['create'::text, 'edit'::text, 'research'::text])))",
    ("agent_requests", "agent_requests_status_check"): "CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'completed'::text, 'failed'::text])))",
    ("agent_requests", "agent_requests_progress_check"): "CHECK (((progress >= (0)::double precision) AND (progress <= (1)::double precision)))",
    ("agent_requests", "agent_requests_token_cost_check"): "CHECK (((token_cost IS NULL) OR (token_cost >= 0)))",
    ("usage_events", "usage_events_tokens_used_check"): "CHECK (((tokens_used IS NULL) OR (tokens_used >= 0)))",
    ("usage_events", "usage_events_cost_check"): "CHECK (((cost IS NULL) OR (cost >= (0)::numeric)))",
}

# (table, constrained columns) -> (referenced table, referenced columns)
EXPECTED_FOREIGN_KEYS = {
    ("user_profiles", ("user_id",)): ("auth.users", ("id",)),
    ("documents", ("user_id",)): ("auth.users", ("id",)),
    ("document_chunks", ("document_id",)): ("documents", ("id",)),
    ("document_chunks", ("document_id", "user_id")): ("documents", ("id", "user_id")),
    ("agent_requests", ("user_id",)): ("auth.users", ("id",)),
    ("agent_sessions", ("user_id",)): ("auth.users", ("id",)),
    ("usage_events", ("user_id",)): ("auth.users", ("id",)),
}

EXPECTED_INDEXES = {
    ("user_profiles", "user_profiles_pkey"): "CREATE UNIQUE INDEX user_profiles_pkey ON public.user_profiles USING btree (id)",
    ("user_profiles", "user_profiles_user_id_key"): "CREATE UNIQUE INDEX user_profiles_user_id_key ON public.user_profiles USING btree (user_id)",
    ("documents", "documents_pkey"): "CREATE UNIQUE INDEX documents_pkey ON public.documents USING btree (id)",
    ("documents", "documents_id_user_id_key"): "CREATE UNIQUE INDEX documents_id_user_id_key ON public.documents USING btree (id, user_id)",
    ("documents", "documents_processing_status"): "CREATE INDEX documents_processing_status ON public.documents USING btree (processing_status)",
    ("documents", "documents_user_created_idx"): "CREATE INDEX documents_user_created_idx ON public.documents USING btree (user_id, created_at DESC, id DESC)",
    ("documents", "documents_user_status_created_idx"): "CREATE INDEX documents_user_status_created_idx ON public.documents USING btree (user_id, processing_status, created_at DESC, id DESC)",
    ("documents", "documents_search_vector_idx"): "CREATE INDEX documents_search_vector_idx ON public.documents USING gin (search_vector)",
    ("document_chunks", "document_chunks_pkey"): "CREATE UNIQUE INDEX document_chunks_pkey ON public.document_chunks USING btree (id)",
    ("document_chunks", "document_chunks_document_id_chunk_index_key"): "CREATE UNIQUE INDEX document_chunks_document_id_chunk_index_key ON public.document_chunks USING btree (document_id, chunk_index)",
    ("document_chunks", "document_chunks_search_vector_idx"): "CREATE INDEX document_chunks_search_vector_idx ON public.document_chunks USING gin (search_vector)",
    ("document_chunks", "document_chunks_embedding_idx"): "CREATE INDEX document_chunks_embedding_idx ON public.document_chunks USING hnsw (embedding extensions.vector_cosine_ops)",
    ("document_chunks", "document_chunks_user_document_idx"): "CREATE INDEX document_chunks_user_document_idx ON public.document_chunks USING btree (user_id, document_id)",
    ("document_chunks", "document_chunks_user_embedded_idx"): "CREATE INDEX document_chunks_user_embedded_idx ON public.document_chunks USING btree (user_id, document_id) WHERE (embedding IS NOT NULL)",
    ("agent_requests", "agent_requests_pkey"): "CREATE UNIQUE INDEX agent_requests_pkey ON public.agent_requests USING btree (id)",
    ("agent_requests", "agent_requests_status"): "CREATE INDEX agent_requests_status ON public.agent_requests USING btree (status)",
    ("agent_requests", "agent_requests_user_created_idx"): "CREATE INDEX agent_requests_user_created_idx ON public.agent_requests USING btree (user_id, created_at DESC, id DESC)",
    ("agent_requests", "agent_requests_user_status_created_idx"): "CREATE INDEX agent_requests_user_status_created_idx ON public.agent_requests USING btree (user_id, status, created_at DESC, id DESC)",
    ("agent_sessions", "agent_sessions_pkey"): "CREATE UNIQUE INDEX agent_sessions_pkey ON public.agent_sessions USING btree (id)",
    ("agent_sessions", "agent_sessions_user_updated_idx"): "CREATE INDEX agent_sessions_user_updated_idx ON public.agent_sessions USING btree (user_id, updated_at DESC, id DESC)",
    ("usage_events", "usage_events_pkey"): "CREATE UNIQUE INDEX usage_events_pkey ON public.usage_events USING btree (id)",
    ("usage_events", "usage_events_event_type"): "CREATE INDEX usage_events_event_type ON public.usage_events USING btree (event_type)",
    ("usage_events", "usage_events_user_created_idx"): "CREATE INDEX usage_events_user_created_idx ON public.usage_events USING btree (user_id, created_at DESC, id DESC)",
    ("usage_events", "usage_events_user_type_created_idx"): "CREATE INDEX usage_events_user_type_created_idx ON public.usage_events USING btree (user_id, event_type, created_at DESC)",
}

EXPECTED_TRIGGERS = {
    ("auth.users", "centrid_on_auth_user_created"): "CREATE TRIGGER centrid_on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION centrid_create_profile()",
    ("migration", "centrid_migration_dedup"): "CREATE TRIGGER centrid_migration_dedup BEFORE INSERT ON public.migration FOR EACH ROW EXECUTE FUNCTION centrid_migration_dedup()",
    ("user_profiles", "user_profiles_touch_updated_at"): "CREATE TRIGGER user_profiles_touch_updated_at BEFORE UPDATE ON public.user_profiles FOR EACH ROW EXECUTE FUNCTION centrid_touch_updated_at()",
    ("documents", "documents_touch_updated_at"): "CREATE TRIGGER documents_touch_updated_at BEFORE UPDATE ON public.documents FOR EACH ROW EXECUTE FUNCTION centrid_touch_updated_at()",
    ("document_chunks", "document_chunks_user_id_from_documents"): "CREATE TRIGGER document_chunks_user_id_from_documents BEFORE INSERT OR UPDATE OF document_id, user_id ON public.document_chunks FOR EACH ROW EXECUTE FUNCTION centrid_document_chunks_user_id_from_documents()",
    ("agent_requests", "agent_requests_touch_updated_at"): "CREATE TRIGGER agent_requests_touch_updated_at BEFORE UPDATE ON public.agent_requests FOR EACH ROW EXECUTE FUNCTION centrid_touch_updated_at()",
    ("agent_sessions", "agent_sessions_touch_updated_at"): "CREATE TRIGGER agent_sessions_touch_updated_at BEFORE UPDATE ON public.agent_sessions FOR EACH ROW EXECUTE FUNCTION centrid_touch_updated_at()",
}

OWNED = "(user_id = ( SELECT auth.uid() AS uid))"
# Chunks compare the owner copied from their document (the composite
# foreign key keeps it equal to the document's).
CHUNK_OWNED = OWNED
# (table, policy) -> (command, roles, USING, WITH CHECK); all PERMISSIVE.
EXPECTED_POLICIES = {
    ("user_profiles", "user_profiles_select_own"): ("SELECT", ["authenticated"], OWNED, None),
    ("user_profiles", "user_profiles_update_own"): ("UPDATE", ["authenticated"], OWNED, OWNED),
    ("documents", "documents_select_own"): ("SELECT", ["authenticated"], OWNED, None),
    ("documents", "documents_insert_own"): ("INSERT", ["authenticated"], None, OWNED),
    ("documents", "documents_update_own"): ("UPDATE", ["authenticated"], OWNED, OWNED),
    ("documents", "documents_delete_own"): ("DELETE", ["authenticated"], OWNED, None),
    ("document_chunks", "document_chunks_select_own"): ("SELECT", ["authenticated"], CHUNK_OWNED, None),
    ("document_chunks", "document_chunks_insert_own"): ("INSERT", ["authenticated"], None, CHUNK_OWNED),
    ("document_chunks", "document_chunks_update_own"): ("UPDATE", ["authenticated"], CHUNK_OWNED, CHUNK_OWNED),
    ("document_chunks", "document_chunks_delete_own"): ("DELETE", ["authenticated"], CHUNK_OWNED, None),
    ("agent_requests", "agent_requests_select_own"): ("SELECT", ["authenticated"], OWNED, None),
    ("agent_requests", "agent_requests_insert_own"): ("INSERT", ["authenticated"], None, OWNED),
    ("agent_requests", "agent_requests_update_own"): ("UPDATE", ["authenticated"], OWNED, OWNED),
    ("agent_requests", "agent_requests_delete_own"): ("DELETE", ["authenticated"], OWNED, None),
    ("agent_sessions", "agent_sessions_select_own"): ("SELECT", ["authenticated"], OWNED, None),
    ("agent_sessions", "agent_sessions_insert_own"): ("INSERT", ["authenticated"], None, OWNED),
    ("agent_sessions", "agent_sessions_update_own"): ("UPDATE", ["authenticated"], OWNED, OWNED),
    ("agent_sessions", "agent_sessions_delete_own"): ("DELETE", ["authenticated"], OWNED, None),
    ("usage_events", "usage_events_select_own"): ("SELECT", ["authenticated"], OWNED, None),
}

# Table privileges per role; authenticated's writes are column privileges.
EXPECTED_TABLE_GRANTS = {
    ("user_profiles", "anon"): {"SELECT"},
    ("user_profiles", "authenticated"): {"SELECT"},
    ("user_profiles", "service_role"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("documents", "anon"): {"SELECT"},
    ("documents", "authenticated"): {"SELECT", "DELETE"},
    ("documents", "service_role"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("document_chunks", "anon"): {"SELECT"},
    ("document_chunks", "authenticated"): {"SELECT", "DELETE"},
    ("document_chunks", "service_role"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("agent_requests", "anon"): {"SELECT"},
    ("agent_requests", "authenticated"): {"SELECT", "DELETE"},
    ("agent_requests", "service_role"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("agent_sessions", "anon"): {"SELECT"},
    ("agent_sessions", "authenticated"): {"SELECT", "DELETE"},
    ("agent_sessions", "service_role"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("usage_events", "anon"): {"SELECT"},
    ("usage_events", "authenticated"): {"SELECT"},
    ("usage_events", "service_role"): {"SELECT", "INSERT"},
}

EXPECTED_AUTHENTICATED_COLUMN_WRITES = {
    ("user_profiles", "UPDATE"): {"name"},
    ("documents", "INSERT"): {"user_id", "filename", "file_type", "file_size", "processing_status", "content_text", "storage_path"},
    ("documents", "UPDATE"): {"filename", "file_type", "file_size", "processing_status", "content_text", "storage_path"},
    ("document_chunks", "INSERT"): {"document_id", "chunk_index", "content", "section_title", "embedding"},
    ("document_chunks", "UPDATE"): {"chunk_index", "content", "section_title", "embedding"},
    ("agent_requests", "INSERT"): {"user_id", "agent_type", "content"},
    ("agent_requests", "UPDATE"): {"agent_type", "content"},
    ("agent_sessions", "INSERT"): {"user_id", "request_chain", "context_state"},
    ("agent_sessions", "UPDATE"): {"request_chain", "context_state"},
}


def _squash(sql: str | None) -> str | None:
    return " ".join(sql.split()) if sql is not None else None


# --------------------------------------------------------------------------
# The catalog


async def test_tables(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('public', 'auth') AND table_type = 'BASE TABLE'"
    )
    assert {(r["table_schema"], r["table_name"]) for r in rows} == {
        ("auth", "users"),
        *(("public", t) for t in SIX_TABLES),
        ("public", "migration"),
        ("public", "piccolo_user"),
        ("public", "sessions"),
    }


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
async def test_columns(module_db: MigratedDB, table: str) -> None:
    rows = await module_db.owner.fetch(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1",
        table,
    )
    actual = {r["column_name"]: (r["data_type"], r["is_nullable"] == "YES", r["column_default"]) for r in rows}
    assert actual == EXPECTED_COLUMNS[table]


async def test_search_vectors_are_generated_from_their_text(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT table_name, is_generated, generation_expression FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'search_vector'"
    )
    assert {r["table_name"]: (r["is_generated"], r["generation_expression"]) for r in rows} == {
        "documents": ("ALWAYS", "to_tsvector('english'::regconfig, COALESCE(content_text, ''::text))"),
        "document_chunks": ("ALWAYS", "to_tsvector('english'::regconfig, COALESCE(content, ''::text))"),
    }


async def test_auth_users_has_supabase_columns(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'auth' AND table_name = 'users'"
    )
    assert {r["column_name"]: r["data_type"] for r in rows} == {
        "id": "uuid",
        "email": "text",
        "raw_user_meta_data": "jsonb",
        "created_at": "timestamp with time zone",
    }
    pk = await module_db.owner.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'auth.users'::regclass AND contype = 'p'"
    )
    assert pk == "PRIMARY KEY (id)"


async def test_check_constraints(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
    )
    assert {(r["t"], r["conname"]): r["def"] for r in rows} == EXPECTED_CHECKS


async def test_primary_and_unique_constraints(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT conrelid::regclass::text AS t, contype::text, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE contype IN ('p', 'u') AND conrelid = ANY($1::regclass[])",
        list(SIX_TABLES),
    )
    assert sorted((r["t"], r["contype"], r["def"]) for r in rows) == sorted(
        [(t, "p", "PRIMARY KEY (id)") for t in SIX_TABLES]
        + [
            ("user_profiles", "u", "UNIQUE (user_id)"),
            ("documents", "u", "UNIQUE (id, user_id)"),
            ("document_chunks", "u", "UNIQUE (document_id, chunk_index)"),
        ]
    )


async def test_foreign_keys_cascade_on_delete(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        """
        SELECT c.conrelid::regclass::text AS t, c.confrelid::regclass::text AS ref, c.confdeltype::text,
               array(SELECT a.attname FROM unnest(c.conkey) k JOIN pg_attribute a
                     ON a.attrelid = c.conrelid AND a.attnum = k)::text[] AS cols,
               array(SELECT a.attname FROM unnest(c.confkey) k JOIN pg_attribute a
                     ON a.attrelid = c.confrelid AND a.attnum = k)::text[] AS refcols
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
        """
    )
    assert {(r["t"], tuple(r["cols"])): (r["ref"], tuple(r["refcols"])) for r in rows} == EXPECTED_FOREIGN_KEYS
    assert {r["confdeltype"] for r in rows} == {"c"}  # every one ON DELETE CASCADE


async def test_indexes(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1)",
        list(SIX_TABLES),
    )
    assert {(r["tablename"], r["indexname"]): r["indexdef"] for r in rows} == EXPECTED_INDEXES


async def test_every_owner_column_leads_an_index(module_db: MigratedDB) -> None:
    """user_id (document_id for chunks) is the first key of some index, so
    RLS's ownership filter and ON DELETE CASCADE never scan a table."""
    rows = await module_db.owner.fetch(
        """
        SELECT i.indrelid::regclass::text AS t, a.attname
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = ANY($1::regclass[])
        """,
        list(SIX_TABLES),
    )
    leading = {(r["t"], r["attname"]) for r in rows}
    for table in SIX_TABLES:
        owner_column = "document_id" if table == "document_chunks" else "user_id"
        assert (table, owner_column) in leading, table


async def test_triggers(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT tgrelid::regclass::text AS t, tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal"
    )
    assert {(r["t"], r["tgname"]): r["def"] for r in rows} == EXPECTED_TRIGGERS


async def test_rls_enabled(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    )
    assert {r["relname"]: r["relrowsecurity"] for r in rows} == {
        **{t: True for t in SIX_TABLES},
        "migration": True,
        "piccolo_user": True,
        "sessions": True,
    }


async def test_policies(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT tablename, policyname, permissive, roles::text[] AS roles, cmd, qual, with_check "
        "FROM pg_policies WHERE schemaname = 'public'"
    )
    assert {r["permissive"] for r in rows} == {"PERMISSIVE"}
    actual = {
        (r["tablename"], r["policyname"]): (r["cmd"], list(r["roles"]), _squash(r["qual"]), _squash(r["with_check"]))
        for r in rows
    }
    assert actual == EXPECTED_POLICIES


async def test_table_grants(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
        "WHERE table_schema = 'public' AND grantee IN ('PUBLIC', 'anon', 'authenticated', 'service_role') "
        "AND table_name = ANY($1)",
        list(SIX_TABLES),
    )
    actual: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        actual.setdefault((r["table_name"], r["grantee"]), set()).add(r["privilege_type"])
    assert actual == EXPECTED_TABLE_GRANTS


async def test_authenticated_column_write_grants(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT table_name, privilege_type, column_name FROM information_schema.column_privileges "
        "WHERE table_schema = 'public' AND grantee = 'authenticated' AND privilege_type IN ('INSERT', 'UPDATE')"
    )
    actual: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        actual.setdefault((r["table_name"], r["privilege_type"]), set()).add(r["column_name"])
    assert actual == EXPECTED_AUTHENTICATED_COLUMN_WRITES


async def test_functions_have_fixed_search_path(module_db: MigratedDB) -> None:
    rows = await module_db.owner.fetch(
        "SELECT pronamespace::regnamespace::text AS schema, proname, proconfig, prosecdef FROM pg_proc "
        "WHERE pronamespace IN ('public'::regnamespace, 'auth'::regnamespace)"
    )
    assert {(r["schema"], r["proname"]): (r["proconfig"], r["prosecdef"]) for r in rows} == {
        ("auth", "uid"): (['search_path=""'], False),
        ("public", "centrid_migration_dedup"): (['search_path=""'], False),
        ("public", "centrid_touch_updated_at"): (['search_path=""'], False),
        ("public", "centrid_create_profile"): (['search_path=""'], True),
        # Runs as the caller, so RLS decides which document it may read.
        ("public", "centrid_document_chunks_user_id_from_documents"): (['search_path=""'], False),
    }


async def test_trigger_functions_not_executable_by_api_roles(module_db: MigratedDB) -> None:
    for fn in ("public.centrid_create_profile()", "public.centrid_touch_updated_at()", "public.centrid_migration_dedup()"):
        for role in ("anon", "authenticated", "service_role"):
            assert not await module_db.owner.fetchval(
                "SELECT has_function_privilege($1, $2, 'EXECUTE')", role, fn
            ), (role, fn)


async def test_no_extension_in_public(module_db: MigratedDB) -> None:
    in_public = await module_db.owner.fetch(
        "SELECT extname FROM pg_extension WHERE extnamespace = 'public'::regnamespace"
    )
    assert in_public == []
    assert await module_db.owner.fetchval("SELECT to_regproc('public.uuid_generate_v4')") is None


# --------------------------------------------------------------------------
# Behaviour of the constraints, defaults and triggers


async def _store(conn: asyncpg.Connection, table: str, column: str, value: Any) -> None:
    """Store `value` in `table.column` on an otherwise valid row (by INSERT
    where users create the row, by UPDATE where they don't)."""
    user = await create_user(conn)
    uid = uuid.UUID(user)
    if table == "user_profiles":  # created by the auth.users trigger
        await conn.execute(f"UPDATE user_profiles SET {column} = $2 WHERE user_id = $1", uid, value)
    elif table == "documents":
        row: dict[str, Any] = {"filename": "a", "file_type": "t", "file_size": 1, "processing_status": "pending"}
        row[column] = value
        await conn.execute(
            "INSERT INTO documents (user_id, filename, file_type, file_size, processing_status) "
            "VALUES ($1, $2, $3, $4, $5)",
            uid, row["filename"], row["file_type"], row["file_size"], row["processing_status"],
        )
    elif table == "document_chunks":
        doc = await insert_document(conn, user)
        row = {"chunk_index": 0, "content": "c"}
        row[column] = value
        await conn.execute(
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, $2, $3)",
            uuid.UUID(doc), row["chunk_index"], row["content"],
        )
    elif table == "agent_requests":  # status etc. are set by the service afterwards
        request = await insert_request(conn, user)
        await conn.execute(f"UPDATE agent_requests SET {column} = $2 WHERE id = $1", uuid.UUID(request), value)
    elif table == "usage_events":
        await conn.execute(f"INSERT INTO usage_events (user_id, event_type, {column}) VALUES ($1, 'x', $2)", uid, value)
    else:  # pragma: no cover
        raise AssertionError(table)


CHECK_CASES = [
    # (table, column, bad value, constraint, a good value on the boundary)
    ("user_profiles", "plan_type", "gold", "user_profiles_plan_type_check", "enterprise"),
    ("user_profiles", "subscription_status", "paused", "user_profiles_subscription_status_check", "expired"),
    ("user_profiles", "usage_count", -1, "user_profiles_usage_count_check", 0),
    ("documents", "processing_status", "done", "documents_processing_status_check", "failed"),
    ("documents", "file_size", 0, "documents_file_size_check", 1),
    ("document_chunks", "chunk_index", -1, "document_chunks_chunk_index_check", 0),
    ("document_chunks", "content", "", "document_chunks_content_check", " "),
    ("agent_requests", "agent_type", "delete", "agent_requests_agent_type_check", "create"),
    ("agent_requests", "status", "running", "agent_requests_status_check", "completed"),
    ("agent_requests", "progress", 1.01, "agent_requests_progress_check", 1.0),
    ("agent_requests", "progress", -0.01, "agent_requests_progress_check", 0.0),
    ("agent_requests", "token_cost", -1, "agent_requests_token_cost_check", 0),
    ("usage_events", "tokens_used", -1, "usage_events_tokens_used_check", 0),
    ("usage_events", "cost", -0.01, "usage_events_cost_check", 0.0),
]


@pytest.mark.parametrize(
    "table,column,bad,constraint,good",
    CHECK_CASES,
    ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in CHECK_CASES],
)
async def test_check_rejects_bad_value(
    module_db: MigratedDB, table: str, column: str, bad: Any, constraint: str, good: Any
) -> None:
    conn = module_db.owner
    tr = conn.transaction()
    await tr.start()
    try:
        await _store(conn, table, column, good)  # the boundary is allowed
        with pytest.raises(asyncpg.exceptions.CheckViolationError) as exc:
            async with conn.transaction():  # a savepoint
                await _store(conn, table, column, bad)
        assert exc.value.constraint_name == constraint
    finally:
        await tr.rollback()


async def test_null_token_cost_and_tokens_used_are_allowed(module_db: MigratedDB) -> None:
    conn = module_db.owner
    tr = conn.transaction()
    await tr.start()
    try:
        user = await create_user(conn)
        request = await insert_request(conn, user)
        assert await conn.fetchval("SELECT token_cost FROM agent_requests WHERE id = $1", uuid.UUID(request)) is None
        await conn.execute(
            "INSERT INTO usage_events (user_id, event_type, tokens_used, cost) VALUES ($1, 'x', NULL, NULL)",
            uuid.UUID(user),
        )
    finally:
        await tr.rollback()


async def test_chunk_index_unique_per_document(module_db: MigratedDB) -> None:
    conn = module_db.owner
    tr = conn.transaction()
    await tr.start()
    try:
        user = await create_user(conn)
        doc, other = await insert_document(conn, user), await insert_document(conn, user)
        await insert_chunk(conn, doc, 0)
        await insert_chunk(conn, other, 0)  # same index, other document: fine
        with pytest.raises(asyncpg.exceptions.UniqueViolationError) as exc:
            await insert_chunk(conn, doc, 0)
        assert exc.value.constraint_name == "document_chunks_document_id_chunk_index_key"
    finally:
        await tr.rollback()


REQUIRED = [
    ("documents", "filename"),
    ("documents", "file_type"),
    ("documents", "file_size"),
    ("document_chunks", "document_id"),
    ("document_chunks", "chunk_index"),
    ("document_chunks", "content"),
    ("agent_requests", "agent_type"),
    ("agent_requests", "content"),
    ("usage_events", "event_type"),
]

# A complete row; $1 is the owning user's id (the document's id for chunks).
VALID_ROW: dict[str, dict[str, str]] = {
    "documents": {"user_id": "$1", "filename": "'a.txt'", "file_type": "'text/plain'", "file_size": "3"},
    "document_chunks": {"document_id": "$1", "chunk_index": "0", "content": "'c'"},
    "agent_requests": {"user_id": "$1", "agent_type": "'edit'", "content": "'c'"},
    "usage_events": {"user_id": "$1", "event_type": "'e'"},
}


def _insert(table: str, cols: dict[str, str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(cols.values())})"


@pytest.mark.parametrize("table,column", REQUIRED, ids=[f"{t}.{c}" for t, c in REQUIRED])
async def test_required_column_has_no_silent_default(module_db: MigratedDB, table: str, column: str) -> None:
    conn = module_db.owner
    tr = conn.transaction()
    await tr.start()
    try:
        user = await create_user(conn)
        parent = await insert_document(conn, user) if table == "document_chunks" else user
        values = dict(VALID_ROW[table])
        # The complete row is accepted ...
        await conn.execute(_insert(table, values), uuid.UUID(parent))
        # ... the same row without `column` is refused, not stored with '' or 0.
        del values[column]
        args = [uuid.UUID(parent)] if "$1" in values.values() else []
        with pytest.raises(asyncpg.exceptions.NotNullViolationError) as exc:
            await conn.execute(_insert(table, values), *args)
        assert exc.value.column_name == column
    finally:
        await tr.rollback()


async def test_profile_created_by_trigger_with_name_from_metadata(module_db: MigratedDB) -> None:
    conn = module_db.owner
    named = await create_user(conn, name="Ada Lovelace")
    unnamed = await create_user(conn)
    rows = await conn.fetch(
        "SELECT user_id::text, name, plan_type, usage_count, subscription_status FROM user_profiles "
        "WHERE user_id = ANY($1::uuid[])",
        [named, unnamed],
    )
    assert {tuple(r) for r in rows} == {
        (named, "Ada Lovelace", "free", 0, "active"),
        (unnamed, None, "free", 0, "active"),
    }
    # Any insert into auth.users, with other metadata keys too.
    other = await conn.fetchval(
        "INSERT INTO auth.users (email, raw_user_meta_data) VALUES ('x@example.test', $1::jsonb) RETURNING id::text",
        json.dumps({"name": "Grace", "avatar": "g.png"}),
    )
    assert await conn.fetchval("SELECT name FROM user_profiles WHERE user_id = $1::uuid", other) == "Grace"


async def test_document_search_vector_follows_content_text(module_db: MigratedDB) -> None:
    conn = module_db.owner
    user = await create_user(conn)
    doc = uuid.UUID(await insert_document(conn, user, content_text="The cats were sleeping"))

    async def matches(query: str) -> bool:
        result: bool = await conn.fetchval(
            "SELECT search_vector @@ websearch_to_tsquery('english', $2) FROM documents WHERE id = $1", doc, query
        )
        return result

    assert await matches("cats") and await matches("cat") and await matches("sleep")
    assert not await matches("dogs")
    await conn.execute("UPDATE documents SET content_text = 'Dogs barking loudly' WHERE id = $1", doc)
    assert await matches("dogs") and not await matches("cats")
    await conn.execute("UPDATE documents SET content_text = NULL WHERE id = $1", doc)
    assert await conn.fetchval("SELECT search_vector::text FROM documents WHERE id = $1", doc) == ""
    assert not await matches("dogs")
    with pytest.raises(asyncpg.exceptions.GeneratedAlwaysError):
        await conn.execute("UPDATE documents SET search_vector = to_tsvector('english', 'cats') WHERE id = $1", doc)


async def test_chunk_search_vector_follows_content(module_db: MigratedDB) -> None:
    conn = module_db.owner
    user = await create_user(conn)
    doc = await insert_document(conn, user, content_text=None)
    chunk = uuid.UUID(await insert_chunk(conn, doc, 0, "Black cats cross roads"))
    query = "SELECT search_vector @@ websearch_to_tsquery('english', $2) FROM document_chunks WHERE id = $1"
    assert await conn.fetchval(query, chunk, "cats") is True
    assert await conn.fetchval(query, chunk, "dogs") is False
    await conn.execute("UPDATE document_chunks SET content = 'Lazy dogs nap' WHERE id = $1", chunk)
    assert await conn.fetchval(query, chunk, "dogs") is True
    assert await conn.fetchval(query, chunk, "cats") is False
    # The GIN index answers the search.
    found = await conn.fetch(
        "SELECT id FROM document_chunks WHERE search_vector @@ websearch_to_tsquery('english', 'dogs') AND id = $1",
        chunk,
    )
    assert len(found) == 1


UPDATABLE = [
    ("user_profiles", "name = 'renamed'"),
    ("documents", "filename = 'renamed.txt'"),
    ("agent_requests", "content = 'renamed'"),
    ("agent_sessions", "context_state = '{\"k\": 1}'"),
]


@pytest.mark.parametrize("table,assignment", UPDATABLE, ids=[t for t, _ in UPDATABLE])
async def test_updated_at_advances_on_update(module_db: MigratedDB, table: str, assignment: str) -> None:
    conn = module_db.owner
    user = await create_user(conn)
    rows = await seed_user_rows(conn, user)
    row_id = uuid.UUID(rows[table])
    before = await conn.fetchrow(f"SELECT created_at, updated_at FROM {table} WHERE id = $1", row_id)
    assert before is not None
    # A later transaction (each autocommit statement is one): now() differs.
    await conn.execute(f"UPDATE {table} SET {assignment} WHERE id = $1", row_id)
    after = await conn.fetchrow(f"SELECT created_at, updated_at FROM {table} WHERE id = $1", row_id)
    assert after is not None
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    # The trigger wins over an explicit value: updated_at cannot be back-dated.
    await conn.execute(f"UPDATE {table} SET updated_at = '2000-01-01' WHERE id = $1", row_id)
    latest = await conn.fetchval(f"SELECT updated_at FROM {table} WHERE id = $1", row_id)
    assert latest > after["updated_at"]


async def test_deleting_auth_user_cascades_to_all_six_tables(module_db: MigratedDB) -> None:
    conn = module_db.owner
    doomed, survivor = await create_user(conn), await create_user(conn)
    doomed_rows = await seed_user_rows(conn, doomed)
    survivor_rows = await seed_user_rows(conn, survivor)

    async def present(rows: dict[str, str]) -> dict[str, bool]:
        return {
            t: bool(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE id = $1", uuid.UUID(rows[t])))
            for t in SIX_TABLES
        }

    assert await present(doomed_rows) == {t: True for t in SIX_TABLES}
    await conn.execute("DELETE FROM auth.users WHERE id = $1", uuid.UUID(doomed))
    assert await present(doomed_rows) == {t: False for t in SIX_TABLES}
    assert await present(survivor_rows) == {t: True for t in SIX_TABLES}


async def test_deleting_document_cascades_to_its_chunks(module_db: MigratedDB) -> None:
    conn = module_db.owner
    user = await create_user(conn)
    doc, kept = await insert_document(conn, user), await insert_document(conn, user)
    for i in range(3):
        await insert_chunk(conn, doc, i)
    await insert_chunk(conn, kept, 0)
    await conn.execute("DELETE FROM documents WHERE id = $1", uuid.UUID(doc))
    assert await conn.fetchval("SELECT count(*) FROM document_chunks WHERE document_id = $1", uuid.UUID(doc)) == 0
    assert await conn.fetchval("SELECT count(*) FROM document_chunks WHERE document_id = $1", uuid.UUID(kept)) == 1


OMITTING_USER_ID = {
    "documents": "INSERT INTO documents (filename, file_type, file_size) VALUES ('a', 'b', 1) RETURNING user_id::text",
    "agent_requests": "INSERT INTO agent_requests (agent_type, content) VALUES ('edit', 'x') RETURNING user_id::text",
    "agent_sessions": "INSERT INTO agent_sessions (request_chain) VALUES ('[]') RETURNING user_id::text",
}


@pytest.mark.parametrize("table", sorted(OMITTING_USER_ID))
async def test_user_id_defaults_to_auth_uid(module_db: MigratedDB, table: str) -> None:
    alice = await create_user(module_db.owner)
    async with acting_as(module_db.dsn, "authenticated", alice) as conn:
        assert await conn.fetchval(OMITTING_USER_ID[table]) == alice


async def test_usage_event_user_id_defaults_to_auth_uid_for_service(module_db: MigratedDB) -> None:
    alice = await create_user(module_db.owner)
    async with acting_as(module_db.dsn, "service_role", alice) as conn:
        got = await conn.fetchval("INSERT INTO usage_events (event_type) VALUES ('e') RETURNING user_id::text")
        assert got == alice


async def test_without_a_caller_user_id_has_no_default(module_db: MigratedDB) -> None:
    """auth.uid() is NULL outside a user's scope: an insert that omits
    user_id fails instead of creating an ownerless row."""
    with pytest.raises(asyncpg.exceptions.NotNullViolationError) as exc:
        await module_db.owner.execute("INSERT INTO documents (filename, file_type, file_size) VALUES ('a', 'b', 1)")
    assert exc.value.column_name == "user_id"


async def test_auth_uid_reads_claims_and_legacy_setting(module_db: MigratedDB) -> None:
    conn = module_db.owner
    sub = str(uuid.uuid4())
    legacy = str(uuid.uuid4())
    async with conn.transaction():
        assert await conn.fetchval("SELECT auth.uid()") is None
        await conn.execute("SELECT set_config('request.jwt.claims', $1, true)", json.dumps({"sub": sub}))
        assert str(await conn.fetchval("SELECT auth.uid()")) == sub
        await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, true)", legacy)
        assert str(await conn.fetchval("SELECT auth.uid()")) == legacy


async def test_updated_at_is_the_updating_transactions_time(module_db: MigratedDB) -> None:
    """updated_at is now() of the transaction that updated the row; two
    transactions give two different stamps."""
    conn = module_db.owner
    user = await create_user(conn)
    rows = await seed_user_rows(conn, user)
    row_id = uuid.UUID(rows["documents"])
    stamps = []
    for _ in range(2):
        async with conn.transaction():
            await conn.execute("UPDATE documents SET filename = filename || 'x' WHERE id = $1", row_id)
            stamps.append(await conn.fetchval("SELECT updated_at FROM documents WHERE id = $1", row_id))
            assert stamps[-1] == await conn.fetchval("SELECT now()")
    assert stamps[1] > stamps[0]

