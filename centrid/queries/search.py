"""Keyword, semantic and hybrid search over the caller's chunks, complete under RLS.

The problem this module exists for: the HNSW index holds every user's
vectors and RLS filters what the index scan hands over. A plain
`ORDER BY embedding <=> q LIMIT k` (Supabase's `match_documents`) visits
`hnsw.ef_search` (40) candidates and stops, so a caller who owns a small
share of all chunks silently gets fewer than k hits, or none, although
closer chunks of theirs exist.

The strategy (measured in bench/bench_retrieval.py, docs/BENCHMARKS.md):

1. *Few candidates: exact.* The candidate set is the caller's chunks (and,
   with `document_ids`, only those documents'). The query reaches them
   through `document_chunks.user_id`, the document's owner that the
   database copies onto every chunk (centrid.schema.tables.documents), and
   the partial (user_id, document_id) index of chunks with an embedding:
   first counting at most EXACT_LIMIT + 1 of them from the index alone;
   when there are no more than EXACT_LIMIT, their distances are computed
   exactly and the answer *is* the true top-k. The `c.user_id = <caller>`
   predicate only helps the planner (a custom plan, see `_configure`, so
   it knows how many chunks this caller owns): RLS still decides what is
   visible.
2. *Very many candidates: the index, iteratively.* pgvector 0.8's
   iterative scan (`hnsw.iterative_scan = relaxed_order`, SET LOCAL) keeps
   walking the graph until the LIMIT is satisfied by rows RLS lets through
   (bounded by `hnsw.max_scan_tuples`). The index returns OVERFETCH x k in
   roughly ascending distance, re-sorted exactly. This is approximate, and
   it is approximate where it hurts: a query about a topic the caller has
   little of lands among other users' chunks, and the caller's true
   neighbours are far off in the graph (recall@10 0.70 for a 100,000-chunk
   owner, 0.4 on such queries). So the threshold is set by cost, not by
   share: exact ranking costs about 1 us per candidate on 2 cores, the
   index path about as much as 100,000 candidates ranked exactly, and the
   exact path is taken up to the point where it costs about 1.5 times that
   (docs/BENCHMARKS.md, "Retrieval, round 3").
3. *Never short.* If the index path yields fewer than k rows, the exact
   path runs without the cap: the answer then has min(k, matching) rows
   by construction.

A service_role caller (RLS bypassed) without `document_ids` searches all
chunks through the index, with the same fallback.

Keyword ranking is exact: every matching chunk of the caller's is ranked.
Under RLS PostgreSQL must apply the policy before any condition that is not
LEAKPROOF, and `@@` is not: the GIN index cannot serve a caller's query
(docs/BENCHMARKS.md shows the plans), so the caller's own chunks are read
through the (user_id, document_id) index and matched. That costs a scan of
what the caller owns, which is what limits large owners.

Hybrid is Reciprocal Rank Fusion (k = 60) of the keyword list and the
semantic list, each HYBRID_DEPTH(limit) deep: score = sum of 1 / (60 + rank)
over the lists a chunk is in; ties broken by chunk id. When the caller
has at most ONE_PASS_LIMIT candidates, both lists come from one pass over
their chunks (`_both_exact`: each row read once, the same lists as run
apart).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from centrid.queries.chunks import vector_schema, vector_text
from centrid.schema.tables import DocumentChunk

Mode = Literal["keyword", "semantic", "hybrid"]

RRF_K = 60
# At most this many candidate chunks are ranked exactly (recall 1, about
# 1 us per candidate on the benchmark machine); more go through the index.
# A 100,000-chunk owner took ~100 ms exactly against ~85 ms through the
# index at recall 0.70 (docs/BENCHMARKS.md, "Retrieval, round 3").
EXACT_LIMIT = 150_000
# The index path fetches this many times the limit and keeps the closest:
# relaxed_order returns rows only roughly sorted.
OVERFETCH = 2
# Unfiltered HNSW (m 16) recall@10 on the benchmark's data: 0.74 at
# ef_search 40, 0.84 at 100, 0.92 at 400.
EF_SEARCH = 400
ITERATIVE_SCAN = "relaxed_order"
MAX_SCAN_TUPLES = 20_000
# Hybrid ranks both lists in one pass (_both_exact) up to this many
# candidates with an embedding. Measured (docs/BENCHMARKS.md, "Retrieval,
# round 4"): 10,000 candidates 11 % faster in one pass, 100,000 6 % slower
# (its CTE's ~60-byte rows no longer fit in work_mem, 4 MB, and spill). Set
# where they still fit; the sizes in between were not measured.
ONE_PASS_LIMIT = 50_000


def hybrid_depth(limit: int) -> int:
    """How deep each list goes before fusion."""
    return max(20, 2 * limit)


@dataclass(frozen=True)
class Scope:
    """Whose chunks, as a planner hint (RLS decides): the authenticated
    caller's user id, or None for a service_role caller; and optionally
    some documents."""

    owner: uuid.UUID | None
    document_ids: tuple[uuid.UUID, ...] | None


@dataclass
class Hit:
    id: uuid.UUID
    score: float
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    distance: float | None = None
    rank_value: float | None = None


def _scope_sql(scope: Scope, args: list[Any]) -> str:
    """The conditions narrowing chunks `c` to the scope, as a planner hint.
    `c.user_id` is the document owner the database copies onto each chunk
    (InheritedOwner), so one index reaches a user's chunks and the planner
    knows from its statistics how many there are."""
    conditions = []
    if scope.owner is not None:
        args.append(scope.owner)
        conditions.append("c.user_id = {}")
    if scope.document_ids is not None:
        args.append(list(scope.document_ids))
        conditions.append("c.document_id = ANY({}::uuid[])")
    return " AND ".join(conditions) or "true"


async def keyword_list(q: str, scope: Scope, depth: int) -> list[tuple[uuid.UUID, float]]:
    """(chunk id, ts_rank), best first, ties by id. Exact: every matching
    chunk of the caller's is ranked, read through (user_id, document_id)
    (see the module's docstring on why not GIN)."""
    args: list[Any] = [q]
    where = _scope_sql(scope, args)
    args.append(depth)
    sql = (
        "SELECT c.id, ts_rank(c.search_vector, query) AS rank "
        "FROM websearch_to_tsquery('english', {}) AS query, document_chunks c "
        f"WHERE c.search_vector @@ query AND {where} "
        "ORDER BY rank DESC, c.id LIMIT {}"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [(r["id"], float(r["rank"])) for r in records]


async def _count(scope: Scope, cap: int) -> int:
    """How many of the scope's chunks have an embedding, counting at most
    cap + 1, from the partial (user_id, document_id) index alone."""
    args: list[Any] = []
    where = _scope_sql(scope, args)
    args.append(cap + 1)
    sql = (
        "SELECT count(*) AS n FROM (SELECT 1 FROM document_chunks c "
        f"WHERE c.embedding IS NOT NULL AND {where} LIMIT {{}}) s"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return int(records[0]["n"])


async def _exact(query: str, scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """Exact top-k over the scope's chunks that have an embedding."""
    schema = await vector_schema()
    args: list[Any] = [query]
    where = _scope_sql(scope, args)
    args.append(k)
    # The query vector is parsed once (a scalar sub-select is an InitPlan);
    # a bare `$1::text::vector` is re-parsed for every row once PostgreSQL
    # switches the prepared statement to a generic plan (measured: 27 ms
    # instead of ~2 ms for 1,000 candidates).
    # OFFSET 0 fences the sub-select: planned on its own, with no ORDER BY
    # of its own, it cannot become an HNSW index scan, so the ranking is
    # exact; and unlike a MATERIALIZED CTE the rows stream into the top-k
    # sort instead of being stored first (a tuplestore that spilled to disk
    # at 100,000 candidates; 20-25 % of the time, docs/BENCHMARKS.md).
    sql = (
        "SELECT id, distance FROM ("
        f"SELECT c.id, c.embedding OPERATOR({schema}.<=>) (SELECT {{}}::text::{schema}.vector) AS distance "
        f"FROM document_chunks c WHERE c.embedding IS NOT NULL AND {where} OFFSET 0) candidates "
        "ORDER BY distance, id LIMIT {}"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [(r["id"], float(r["distance"])) for r in records]


async def _indexed(query: str, scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """The index path: HNSW, iteratively, until k of the scope's rows (RLS
    deciding which are the caller's) have come through."""
    schema = await vector_schema()
    args: list[Any] = [query]
    where = _scope_sql(scope, args)
    args.append(OVERFETCH * k)
    args.append(k)
    sql = (
        "WITH near AS MATERIALIZED ("
        f"SELECT c.id, c.embedding OPERATOR({schema}.<=>) q.v AS distance "
        f"FROM (SELECT {{}}::text::{schema}.vector AS v) q, document_chunks c WHERE {where} "
        f"ORDER BY c.embedding OPERATOR({schema}.<=>) q.v LIMIT {{}}) "
        "SELECT id, distance FROM near ORDER BY distance, id LIMIT {}"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [(r["id"], float(r["distance"])) for r in records]


async def _candidates(scope: Scope) -> int | None:
    """How many of the scope's chunks have an embedding, counted up to
    EXACT_LIMIT + 1; None for a search over everyone's (service_role
    without document_ids), which always goes through the index."""
    if scope.owner is None and scope.document_ids is None:
        return None
    return await _count(scope, EXACT_LIMIT)


def _exact_enough(candidates: int | None) -> bool:
    """Whether that many candidates are few enough to rank exactly."""
    return candidates is not None and candidates <= EXACT_LIMIT


async def _approximate(query: str, scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """The index path, with the exact fallback that keeps it from being short."""
    hits = await _indexed(query, scope, k)
    if len(hits) < k:
        hits = await _exact(query, scope, k)
    return hits


async def semantic_list(embedding: Sequence[float], scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """(chunk id, cosine distance), closest first, ties by id: the caller's
    true top-k by exact search when few, else by the index (never short)."""
    query = vector_text(embedding)
    if _exact_enough(await _candidates(scope)):
        return await _exact(query, scope, k)
    return await _approximate(query, scope, k)


async def _both_exact(
    q: str, query: str, scope: Scope, depth: int
) -> tuple[list[tuple[uuid.UUID, float]], list[tuple[uuid.UUID, float]]]:
    """The keyword and the semantic list in one pass over the scope's chunks:
    each row is read once and gets both its distance and its ts_rank, then
    each list takes its own top `depth` (the same orders and ties as
    keyword_list and _exact, so fusing them gives the same answer). The
    MATERIALIZED CTE has no ORDER BY of its own, so no index scan can serve
    it: the ranking is exact. Measured against the two lists run apart in
    docs/BENCHMARKS.md ("Retrieval, round 4")."""
    schema = await vector_schema()
    args: list[Any] = [query, q]
    where = _scope_sql(scope, args)
    args += [depth, depth]
    sql = (
        "WITH candidates AS MATERIALIZED ("
        f"SELECT c.id, c.embedding OPERATOR({schema}.<=>) (SELECT {{}}::text::{schema}.vector) AS distance, "
        "CASE WHEN c.search_vector @@ t.query THEN ts_rank(c.search_vector, t.query) END AS rank "
        "FROM (SELECT websearch_to_tsquery('english', {}) AS query) t, document_chunks c "
        f"WHERE {where}) "
        "(SELECT true AS semantic, id, distance::float8 AS value FROM candidates "
        "WHERE distance IS NOT NULL ORDER BY distance, id LIMIT {}) "
        "UNION ALL "
        "(SELECT false, id, rank::float8 FROM candidates WHERE rank IS NOT NULL ORDER BY rank DESC, id LIMIT {})"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    keyword = [(r["id"], float(r["value"])) for r in records if not r["semantic"]]
    semantic = [(r["id"], float(r["value"])) for r in records if r["semantic"]]
    # UNION ALL promises no order (a parallel append, possible for
    # service_role, may interleave): each list is put back in its own.
    # Python orders UUIDs as PostgreSQL does, byte by byte.
    keyword.sort(key=lambda hit: (-hit[1], hit[0]))
    semantic.sort(key=lambda hit: (hit[1], hit[0]))
    return keyword, semantic


def fuse(keyword: Sequence[tuple[uuid.UUID, float]], semantic: Sequence[tuple[uuid.UUID, float]]) -> list[Hit]:
    """Reciprocal Rank Fusion: score = sum of 1 / (RRF_K + rank) over the
    lists a chunk is in (ranks from 1); best first, ties by chunk id."""
    hits: dict[uuid.UUID, Hit] = {}
    for rank, (chunk_id, value) in enumerate(keyword, start=1):
        hit = hits.setdefault(chunk_id, Hit(chunk_id, 0.0))
        hit.keyword_rank = rank
        hit.rank_value = value
        hit.score += 1.0 / (RRF_K + rank)
    for rank, (chunk_id, distance) in enumerate(semantic, start=1):
        hit = hits.setdefault(chunk_id, Hit(chunk_id, 0.0))
        hit.semantic_rank = rank
        hit.distance = distance
        hit.score += 1.0 / (RRF_K + rank)
    return sorted(hits.values(), key=lambda h: (-h.score, str(h.id)))


async def _configure(k: int) -> None:
    """Transaction-local settings for this search, in one round trip.

    `plan_cache_mode = force_custom_plan`: ownership is skewed (one user
    owns a chunk, another a hundred thousand), and a prepared statement's
    generic plan is costed for the average owner: after five executions
    PostgreSQL would reuse it for everyone, and plan a large owner's search
    as if they had a hundred chunks. A custom plan sees the owner's id and
    the planner's statistics for it. The hnsw settings serve the index path.
    """
    await DocumentChunk.raw(
        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
        "set_config('hnsw.iterative_scan', {}, true), "
        "set_config('hnsw.ef_search', {}, true), set_config('hnsw.max_scan_tuples', {}, true)",
        ITERATIVE_SCAN,
        str(max(EF_SEARCH, OVERFETCH * k)),
        str(MAX_SCAN_TUPLES),
    ).run()


async def search(
    *, q: str | None, embedding: Sequence[float] | None, mode: Mode, limit: int, scope: Scope
) -> list[Hit]:
    await _configure(limit if mode != "hybrid" else hybrid_depth(limit))
    if mode == "keyword":
        assert q is not None
        return [
            Hit(chunk_id, rank, keyword_rank=i, rank_value=rank)
            for i, (chunk_id, rank) in enumerate(await keyword_list(q, scope, limit), start=1)
        ]
    if mode == "semantic":
        assert embedding is not None
        return [
            Hit(chunk_id, 1.0 - distance, semantic_rank=i, distance=distance)
            for i, (chunk_id, distance) in enumerate(await semantic_list(embedding, scope, limit), start=1)
        ]
    assert q is not None and embedding is not None
    depth = hybrid_depth(limit)
    query = vector_text(embedding)
    candidates = await _candidates(scope)
    if candidates is not None and candidates <= min(ONE_PASS_LIMIT, EXACT_LIMIT):
        keyword, semantic = await _both_exact(q, query, scope, depth)
    else:
        keyword = await keyword_list(q, scope, depth)
        exact = _exact_enough(candidates)
        semantic = await (_exact(query, scope, depth) if exact else _approximate(query, scope, depth))
    return fuse(keyword, semantic)[:limit]


async def hit_rows(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """The hits with their chunk and document fields, in the hits' order."""
    if not hits:
        return []
    records = await DocumentChunk.raw(
        "SELECT c.id, c.document_id, d.filename, c.chunk_index, c.content, c.section_title "
        "FROM document_chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY({}::uuid[])",
        [h.id for h in hits],
    ).run()
    by_id = {r["id"]: dict(r) for r in records}
    rows = []
    for hit in hits:
        row = by_id.get(hit.id)
        if row is None:  # not visible any more (deleted meanwhile): dropped
            continue
        row.update(
            score=hit.score, keyword_rank=hit.keyword_rank, semantic_rank=hit.semantic_rank, distance=hit.distance
        )
        rows.append(row)
    return rows
