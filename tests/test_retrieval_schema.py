"""Retrieval schema: the embedding column, its HNSW index and pgvector, as
migrations make them; `check` sees drift in each; and `forwards` stops
before changing anything on a database without pgvector 0.8+."""

from __future__ import annotations

import sys
import subprocess

import uuid

import asyncpg
import httpx

from centrid.schema.drift import find_drift
from centrid.schema.render import storage_backwards_sql, storage_forwards_sql
from centrid.schema.tables import SECURITY, TABLE_CLASSES
from centrid.schema.tables.documents import CHUNK_SECURITY
from tests.api_support import make_document
from tests.conftest import MigratedDB
from tests.support import REPO, bearer, create_user, run_piccolo


async def test_embedding_column_index_and_extension(db: MigratedDB) -> None:
    column = await db.owner.fetchrow(
        "SELECT format_type(atttypid, atttypmod) AS type, NOT attnotnull AS nullable FROM pg_attribute "
        "WHERE attrelid = 'public.document_chunks'::regclass AND attname = 'embedding'"
    )
    assert column is not None
    assert (column["type"], column["nullable"]) == ("extensions.vector(384)", True)
    index = await db.owner.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'document_chunks_embedding_idx'"
    )
    assert index == (
        "CREATE INDEX document_chunks_embedding_idx ON public.document_chunks "
        "USING hnsw (embedding extensions.vector_cosine_ops)"
    )
    ext = await db.owner.fetchrow(
        "SELECT extnamespace::regnamespace::text AS schema, string_to_array(extversion, '.')::int[] AS version "
        "FROM pg_extension WHERE extname = 'vector'"
    )
    assert ext is not None
    assert ext["schema"] == "extensions"
    assert ext["version"] >= [0, 8, 0]
    # Every API role can use the type (queries cast to it and use its operators).
    for role in ("anon", "authenticated", "service_role"):
        assert await db.owner.fetchval("SELECT has_schema_privilege($1, 'extensions', 'USAGE')", role)


async def _drift_lines(db: MigratedDB) -> list[str]:
    return [str(d) for d in await find_drift(db.owner, TABLE_CLASSES, SECURITY)]


async def test_check_reports_a_dropped_vector_index(db: MigratedDB) -> None:
    await db.owner.execute("DROP INDEX document_chunks_embedding_idx")
    lines = await _drift_lines(db)
    assert lines == [
        "document_chunks: index document_chunks_embedding_idx: expected hnsw (embedding vector_cosine_ops), found none"
    ]


async def test_check_reports_a_wrong_vector_dimension(db: MigratedDB) -> None:
    await db.owner.execute(
        "ALTER TABLE document_chunks ALTER COLUMN embedding TYPE extensions.vector(512) USING NULL"
    )
    lines = await _drift_lines(db)
    # A new type also resets the column to the type's storage: reported too.
    assert lines == [
        "document_chunks.embedding: expected type vector(384), found vector(512)",
        "document_chunks.embedding: expected storage main, found storage external",
    ]


async def _embedding_storage(conn: asyncpg.Connection) -> str:
    return str(
        await conn.fetchval(
            "SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'public.document_chunks'::regclass AND attname = 'embedding'"
        )
    )


async def test_check_reports_storage_drift_and_the_migration_undoes_cleanly(db: MigratedDB) -> None:
    assert await _embedding_storage(db.owner) == "m"
    # The storage migration's backwards SQL: each type's own mode (EXTERNAL
    # for vector, EXTENDED for tsvector) and PostgreSQL's toast target.
    await db.owner.execute(storage_backwards_sql(CHUNK_SECURITY))
    assert await _embedding_storage(db.owner) == "e"
    assert await _drift_lines(db) == [
        "document_chunks.embedding: expected storage main, found storage external",
        "document_chunks.search_vector: expected storage main, found storage extended",
        "document_chunks: storage: expected (toast_tuple_target=4080), found no storage parameters",
    ]
    await db.owner.execute(storage_forwards_sql(CHUNK_SECURITY))
    assert await _drift_lines(db) == []


def _long_text(words: int) -> str:
    """Text like a real chunk's: a vocabulary that repeats, so it compresses
    as prose does (a few hundred bytes), while the row, vector included,
    still passes the ~2 kB at which PostgreSQL moves a value out of line."""
    vocabulary = [f"{w}{i}" for i, w in enumerate(("retrieval", "ranking", "vector", "chunk", "owner", "policy") * 10)]
    return " ".join(vocabulary[(i * 7) % len(vocabulary)] for i in range(words))


async def _post_long_chunk(client: httpx.AsyncClient, user: str, doc: str, index: int) -> uuid.UUID:
    body = {"chunk_index": index, "content": _long_text(150), "embedding": [0.5] * 384}
    r = await client.post(f"/api/documents/{doc}/chunks", json=body, headers=bearer(user))
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["items"][0]["id"])


_OUT_OF_LINE_SQL = (
    "SELECT pg_column_toast_chunk_id(embedding) IS NOT NULL AS vector, "
    "pg_column_toast_chunk_id(search_vector) IS NOT NULL AS tsvector FROM document_chunks WHERE id = $1"
)


async def test_a_long_chunk_keeps_its_vector_in_the_row(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """The point of the storage declaration: a chunk with about 1,400
    characters of text keeps its vector and its tsvector in the row (a
    caller's search reads them for every chunk it considers, the text for
    ten)."""
    alice = await create_user(db.owner)
    doc = (await make_document(client, alice))["id"]
    chunk = await _post_long_chunk(client, alice, doc, 0)
    assert dict(await db.owner.fetchrow(_OUT_OF_LINE_SQL, chunk) or {}) == {"vector": False, "tsvector": False}
    # With PostgreSQL's defaults the same write sends the vector out of line.
    await db.owner.execute(storage_backwards_sql(CHUNK_SECURITY))
    chunk = await _post_long_chunk(client, alice, doc, 1)
    assert (await db.owner.fetchrow(_OUT_OF_LINE_SQL, chunk) or {})["vector"] is True


async def test_check_reports_an_old_or_missing_extension(db: MigratedDB) -> None:
    await db.owner.execute("DROP INDEX document_chunks_embedding_idx")
    await db.owner.execute("ALTER TABLE document_chunks DROP COLUMN embedding")
    await db.owner.execute("DROP EXTENSION vector")
    lines = await _drift_lines(db)
    assert "database: extension vector: expected installed, version >= 0.8.0, found none" in lines, lines
    code = run_piccolo(["centrid", "check"], db.dsn)
    assert code.returncode == 1
    assert "extension vector" in code.stdout


# Runs `piccolo migrations forwards all` with the required pgvector version
# made unreachable, as on a server that lacks it.
_UNREACHABLE_PGVECTOR = """
import dataclasses, sys
import centrid.schema.render as render
_declared = render.declared_extensions
render.declared_extensions = lambda tables: [dataclasses.replace(e, min_version="99.0") for e in _declared(tables)]
sys.argv = ["piccolo", "migrations", "forwards", "all"]
from piccolo.main import main
main()
"""

_STATE_SQL = """
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) AS public_relations,
       (SELECT count(*) FROM pg_namespace WHERE nspname IN ('auth', 'extensions')) AS schemas,
       (SELECT count(*) FROM pg_extension WHERE extname = 'vector') AS vector,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) AS functions
"""


async def test_forwards_without_pgvector_changes_nothing(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        before = dict(await conn.fetchrow(_STATE_SQL) or {})
        assert before == {"public_relations": 0, "schemas": 0, "vector": 0, "functions": 0}
        import os

        result = subprocess.run(
            [sys.executable, "-c", _UNREACHABLE_PGVECTOR],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": empty_dsn},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "'vector' 99.0 or newer" in output, output
        assert "pgvector" in output and "nothing was changed" in output, output
        assert "Traceback" not in output, output
        # Not even Piccolo's migration table: the run stopped before anything.
        assert dict(await conn.fetchrow(_STATE_SQL) or {}) == before
    finally:
        await conn.close()
    # The same database migrates once pgvector is there (it is, on this server).
    result = run_piccolo(["migrations", "forwards", "all"], empty_dsn)
    assert result.returncode == 0, result.stdout + result.stderr
