"""Keyword, semantic and hybrid search over the caller's chunks, complete under RLS.

The problem this module exists for: the HNSW index holds every user's
vectors and RLS filters what the index scan hands over. A plain
`ORDER BY embedding <=> q LIMIT k` (Supabase's `match_documents`) visits
`hnsw.ef_search` (40) candidates and stops, so a caller who owns a small
share of all chunks silently gets fewer than k hits, or none, although
closer chunks of theirs exist.

The strategy (measured in bench/bench_retrieval.py, docs/BENCHMARKS.md):

0. *A large owner: their own index.* An owner with a per-owner IVFFlat
   index (centrid.schema.owner_indexes, made by `piccolo centrid
   owner_indexes` for owners of at least 5,000 embedded chunks) is
   searched through it when the search covers all their chunks: it holds
   their vectors only, so every row it hands over passes the policy.
   `ivfflat.probes` is set LOCAL from the index's lists; the nearest
   OVERFETCH x k are re-sorted by exact distance, and the exact fallback
   below keeps it from being short.
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
their chunks (`both_exact`: each row read once, the same lists as run
apart).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from centrid.queries.chunks import vector_text
from centrid.queries.search_lists import (
    Route,
    Scope,
    both_exact,
    exact_list,
    indexed_list,
    keyword_list,
    owner_list,
    route,
    scope_sql,
)
from centrid.schema.owner_indexes import probes
from centrid.schema.tables import DocumentChunk

__all__ = ["Hit", "Mode", "Scope", "fuse", "hit_rows", "hybrid_depth", "search", "semantic_list"]

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
# Hybrid ranks both lists in one pass (search_lists.both_exact) up to this many
# candidates with an embedding. Measured (docs/BENCHMARKS.md, "Retrieval,
# round 4"): 10,000 candidates 11 % faster in one pass, 100,000 6 % slower
# (its CTE's ~60-byte rows no longer fit in work_mem, 4 MB, and spill). Set
# where they still fit; the sizes in between were not measured.
ONE_PASS_LIMIT = 50_000


def hybrid_depth(limit: int) -> int:
    """How deep each list goes before fusion."""
    return max(20, 2 * limit)


@dataclass
class Hit:
    id: uuid.UUID
    score: float
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    distance: float | None = None
    rank_value: float | None = None


async def _route(scope: Scope) -> Route | None:
    """The scope's route (search_lists.route) with the count capped at
    EXACT_LIMIT; None for a search over everyone's (service_role without
    document_ids), which always goes through the index."""
    if scope.owner is None and scope.document_ids is None:
        return None
    return await route(scope, EXACT_LIMIT)


def _exact_count(way: Route | None) -> int | None:
    """How many candidates to rank exactly, or None when an index serves
    the scope (an owner index, too many candidates, or everyone's)."""
    if way is None or way.owner_lists is not None or way.candidates is None or way.candidates > EXACT_LIMIT:
        return None
    return way.candidates


async def _approximate(query: str, scope: Scope, k: int, owner_lists: int | None) -> list[tuple[uuid.UUID, float]]:
    """An index path (the owner's index when they have one, else the
    shared one), with the exact fallback that keeps it from being short."""
    if owner_lists is not None:
        await DocumentChunk.raw("SELECT set_config('ivfflat.probes', {}, true)", str(probes(owner_lists))).run()
        hits = await owner_list(query, scope, k, OVERFETCH * k)
    else:
        hits = await indexed_list(query, scope, k, OVERFETCH * k)
    if len(hits) < k:
        hits = await exact_list(query, scope, k)
    return hits


async def _semantic(query: str, scope: Scope, k: int, way: Route | None) -> list[tuple[uuid.UUID, float]]:
    if _exact_count(way) is not None:
        return await exact_list(query, scope, k)
    return await _approximate(query, scope, k, None if way is None else way.owner_lists)


async def semantic_list(embedding: Sequence[float], scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """(chunk id, cosine distance), closest first, ties by id: the caller's
    true top-k by exact search when few, else by an index (never short)."""
    return await _semantic(vector_text(embedding), scope, k, await _route(scope))


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
    way = await _route(scope)
    exact = _exact_count(way)
    if exact is not None and exact <= ONE_PASS_LIMIT:
        keyword, semantic = await both_exact(q, query, scope, depth)
    else:
        keyword = await keyword_list(q, scope, depth)
        semantic = await _semantic(query, scope, depth, way)
    return fuse(keyword, semantic)[:limit]


async def hit_rows(hits: Sequence[Hit], scope: Scope) -> list[dict[str, Any]]:
    """The hits with their chunk and document fields, in the hits' order."""
    if not hits:
        return []
    args: list[Any] = [[h.id for h in hits]]
    where = scope_sql(scope, args)
    # The hits first, by primary key, then their documents. Joined plainly,
    # the planner started from the caller's documents (estimated from the
    # policy's auth.uid() as an average owner's few) and probed every one of
    # them: 60 ms of a 100,000-chunk owner's 78 ms semantic search
    # (docs/BENCHMARKS.md, "Retrieval, round 5"). The fence makes the chunks
    # come first; the scope's constant owner (a planner hint, as in every
    # list) keeps the planner from also reading all of the owner's chunk
    # ids from (user_id, document_id) to AND them with the ten (8 ms more).
    records = await DocumentChunk.raw(
        "WITH hit AS MATERIALIZED (SELECT c.id, c.document_id, c.chunk_index, c.content, c.section_title "
        f"FROM document_chunks c WHERE c.id = ANY({{}}::uuid[]) AND {where}) "
        "SELECT hit.id, hit.document_id, d.filename, hit.chunk_index, hit.content, hit.section_title "
        "FROM hit JOIN documents d ON d.id = hit.document_id",
        *args,
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
