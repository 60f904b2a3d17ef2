"""Chunk reads and writes that involve the `embedding` vector.

Vectors travel as pgvector's text form, `[0.1,0.2,...]`, which is also a
JSON array: orjson writes it and reads it back, and asyncpg passes a
parameter whose type it has no codec for (`vector`) as text. Measured
(docs/BENCHMARKS.md, retrieval section): a registered binary codec sends
1,000 vectors in 18 ms against 67 ms as text, but it must be registered on
every pooled connection (the pool's `init`, centrid/db/pool.py, outside
this change): left as a follow-up.

RLS and grants decide everything here: an UPDATE names only the document
and chunk indexes, and a chunk the caller may not change is simply not
updated (and reported missing), exactly like a chunk that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from centrid.schema.tables import DocumentChunk

CHUNK_COLUMNS = (
    "c.id, c.document_id, c.chunk_index, c.content, c.section_title, c.created_at, "
    "c.embedding IS NOT NULL AS has_embedding"
)


def vector_text(values: Sequence[float]) -> str:
    """pgvector's input form; shortest round-trip float text, no spaces."""
    return orjson.dumps(list(values)).decode()


def _columns(include_embedding: bool) -> str:
    return CHUNK_COLUMNS + (", c.embedding::text AS embedding" if include_embedding else "")


def _decode(record: Any, include_embedding: bool) -> dict[str, Any]:
    row = dict(record)
    if include_embedding and row.get("embedding") is not None:
        row["embedding"] = orjson.loads(row["embedding"])
    return row


async def list_chunks(document_id: uuid.UUID, *, include_embedding: bool) -> list[dict[str, Any]]:
    sql = f"SELECT {_columns(include_embedding)} FROM document_chunks c WHERE c.document_id = {{}} ORDER BY c.chunk_index"
    records = await DocumentChunk.raw(sql, document_id).run()
    return [_decode(r, include_embedding) for r in records]


async def insert_chunks(
    document_id: uuid.UUID, chunks: Sequence[dict[str, Any]], *, include_embedding: bool
) -> list[dict[str, Any]]:
    """One INSERT (all or none). Columns: those every chunk may carry; the
    embedding column only when some chunk has one (so a caller without the
    column privilege can still add plain chunks)."""
    with_vectors = any(c.get("embedding") is not None for c in chunks)
    names = ["document_id", "chunk_index", "content", "section_title"] + (["embedding"] if with_vectors else [])
    args: list[Any] = []
    rows_sql = []
    for chunk in chunks:
        values: list[Any] = [document_id, chunk["chunk_index"], chunk["content"], chunk.get("section_title")]
        if with_vectors:
            embedding = chunk.get("embedding")
            values.append(None if embedding is None else vector_text(embedding))
        args.extend(values)
        rows_sql.append("(" + ", ".join("{}" for _ in values) + ")")
    sql = (
        f"WITH c AS (INSERT INTO document_chunks ({', '.join(names)}) VALUES {', '.join(rows_sql)} RETURNING *) "
        f"SELECT {_columns(include_embedding)} FROM c ORDER BY c.chunk_index"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [_decode(r, include_embedding) for r in records]


PATCHABLE = ("embedding", "content", "section_title")


async def patch_chunks(
    document_id: uuid.UUID, patches: Sequence[dict[str, Any]], *, include_embedding: bool
) -> list[dict[str, Any]]:
    """One UPDATE for every patch (all or none). Each patch names a
    chunk_index and the fields it changes; fields it leaves out keep their
    value. Returns the updated rows; the caller compares their indexes with
    the ones asked for."""
    touched = [name for name in PATCHABLE if any(name in p for p in patches)]
    vector = await vector_type() if "embedding" in touched else ""
    # unnest(chunk_index[], then per touched field: given[] and value[]),
    # so one statement updates every chunk with only what its patch names.
    args: list[Any] = [[p["chunk_index"] for p in patches]]
    casts = ["{}::int[]"]
    aliases = ["chunk_index"]
    setters = []
    for k, name in enumerate(touched):
        values = [p.get(name) for p in patches]
        if name == "embedding":
            values = [None if v is None else vector_text(v) for v in values]
        args += [[name in p for p in patches], values]
        casts += ["{}::bool[]", "{}::text[]"]
        aliases += [f"g{k}", f"v{k}"]
        value = f"i.v{k}::{vector}" if name == "embedding" else f"i.v{k}"
        setters.append(f"{name} = CASE WHEN i.g{k} THEN {value} ELSE c.{name} END")
    args.append(document_id)
    sql = (
        f"WITH c AS (UPDATE document_chunks c SET {', '.join(setters)} "
        f"FROM unnest({', '.join(casts)}) AS i({', '.join(aliases)}) "
        "WHERE c.document_id = {} AND c.chunk_index = i.chunk_index RETURNING c.*) "
        f"SELECT {_columns(include_embedding)} FROM c ORDER BY c.chunk_index"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [_decode(r, include_embedding) for r in records]


_vector_type: str | None = None


async def vector_type() -> str:
    """`vector`, qualified by its schema when that is not on the search path
    (`extensions.vector` on a vanilla database, as centrid creates it).
    Read once per process from the catalog: where an extension lives does
    not change under a running service."""
    global _vector_type
    if _vector_type is None:
        records = await DocumentChunk.raw(
            "SELECT format_type(t.oid, NULL) AS name, n.nspname AS schema FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace "
            "JOIN pg_extension e ON e.extnamespace = n.oid AND e.extname = 'vector' WHERE t.typname = 'vector'"
        ).run()
        if not records:
            raise RuntimeError("the vector extension is not installed")
        _vector_type = f'"{records[0]["schema"]}".vector'
    return _vector_type


async def vector_schema() -> str:
    name = await vector_type()
    return name.rsplit(".", 1)[0]
