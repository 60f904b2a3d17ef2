"""Retrieval schema: the embedding column, its HNSW index and pgvector, as
migrations make them; `check` sees drift in each; and `forwards` stops
before changing anything on a database without pgvector 0.8+."""

from __future__ import annotations

import sys
import subprocess

import asyncpg

from centrid.schema.drift import find_drift
from centrid.schema.tables import SECURITY, TABLE_CLASSES
from tests.conftest import MigratedDB
from tests.support import REPO, run_piccolo


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
    assert lines == ["document_chunks.embedding: expected type vector(384), found vector(512)"]


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
