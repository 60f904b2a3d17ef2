"""The SQL of each ranked list a search is made of, over the chunks `c`
RLS lets the caller see. centrid.queries.search chooses which to run.

Every list narrows `c` with the scope's conditions (`scope_sql`): a planner
hint, never the rule; RLS decides what is visible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from centrid.queries.chunks import vector_schema
from centrid.schema.owner_indexes import index_name, indexed_expression
from centrid.schema.tables import DocumentChunk


@dataclass(frozen=True)
class Scope:
    """Whose chunks, as a planner hint (RLS decides): the authenticated
    caller's user id, or None for a service_role caller; and optionally
    some documents."""

    owner: uuid.UUID | None
    document_ids: tuple[uuid.UUID, ...] | None


@dataclass(frozen=True)
class Route:
    """What decides the semantic path: when the scope is exactly one owner
    with a valid per-owner index (centrid.schema.owner_indexes), its number
    of lists; otherwise how many candidates the scope has (counted up to a
    cap + 1)."""

    owner_lists: int | None
    candidates: int | None


def scope_sql(scope: Scope, args: list[Any]) -> str:
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
    (see centrid.queries.search on why not GIN)."""
    args: list[Any] = [q]
    where = scope_sql(scope, args)
    args.append(depth)
    sql = (
        "SELECT c.id, ts_rank(c.search_vector, query) AS rank "
        "FROM websearch_to_tsquery('english', {}) AS query, document_chunks c "
        f"WHERE c.search_vector @@ query AND {where} "
        "ORDER BY rank DESC, c.id LIMIT {}"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [(r["id"], float(r["rank"])) for r in records]


async def route(scope: Scope, cap: int) -> Route:
    """In one round trip: the owner's index and its lists (only for a
    search over all of one owner's chunks), else how many of the scope's
    chunks have an embedding, counting at most cap + 1 from the partial
    (user_id, document_id) index alone; the CASE skips the count when the
    index is there. The catalogs are readable by every role, and an index's
    existence says nothing about rows."""
    name = None if scope.owner is None or scope.document_ids is not None else f"public.{index_name(scope.owner)}"
    args: list[Any] = []
    where = scope_sql(scope, args)
    args += [cap + 1, name]
    sql = (
        "SELECT i.lists, CASE WHEN i.lists IS NOT NULL THEN NULL ELSE ("
        "SELECT count(*) FROM (SELECT 1 FROM document_chunks c "
        f"WHERE c.embedding IS NOT NULL AND {where} LIMIT {{}}) s) END AS n "
        "FROM (SELECT (SELECT o.option_value::int FROM pg_catalog.pg_index x "
        "JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid, pg_catalog.pg_options_to_table(ic.reloptions) o "
        "WHERE x.indexrelid = to_regclass({}::text) AND x.indisvalid AND o.option_name = 'lists') AS lists) i"
    )
    record = (await DocumentChunk.raw(sql, *args).run())[0]
    return Route(owner_lists=record["lists"], candidates=None if record["n"] is None else int(record["n"]))


async def exact_list(query: str, scope: Scope, k: int) -> list[tuple[uuid.UUID, float]]:
    """Exact top-k over the scope's chunks that have an embedding."""
    schema = await vector_schema()
    args: list[Any] = [query]
    where = scope_sql(scope, args)
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


async def _nearest(query: str, scope: Scope, k: int, fetch: int, *, owner_index: bool) -> list[tuple[uuid.UUID, float]]:
    """The `fetch` rows an index scan hands over first (RLS deciding which
    are the caller's), re-sorted by exact distance; the closest k."""
    schema = await vector_schema()
    order = f"({indexed_expression(schema)})" if owner_index else "c.embedding"
    args: list[Any] = [query]
    where = scope_sql(scope, args)
    args += [fetch, k]
    sql = (
        "WITH near AS MATERIALIZED ("
        f"SELECT c.id, c.embedding OPERATOR({schema}.<=>) q.v AS distance "
        f"FROM (SELECT {{}}::text::{schema}.vector AS v) q, document_chunks c WHERE {where} "
        f"ORDER BY {order} OPERATOR({schema}.<=>) q.v LIMIT {{}}) "
        "SELECT id, distance FROM near ORDER BY distance, id LIMIT {}"
    )
    records = await DocumentChunk.raw(sql, *args).run()
    return [(r["id"], float(r["distance"])) for r in records]


async def owner_list(query: str, scope: Scope, k: int, fetch: int) -> list[tuple[uuid.UUID, float]]:
    """Through the owner's own index (the caller sets ivfflat.probes): ordered
    by the normalised vector, which only that index holds (its predicate
    implied by the `c.user_id = <owner>` constant of the custom plan)."""
    return await _nearest(query, scope, k, fetch, owner_index=True)


async def indexed_list(query: str, scope: Scope, k: int, fetch: int) -> list[tuple[uuid.UUID, float]]:
    """Through the shared HNSW index, iteratively, until `fetch` of the
    scope's rows have come through."""
    return await _nearest(query, scope, k, fetch, owner_index=False)


async def both_exact(
    q: str, query: str, scope: Scope, depth: int
) -> tuple[list[tuple[uuid.UUID, float]], list[tuple[uuid.UUID, float]]]:
    """The keyword and the semantic list in one pass over the scope's chunks:
    each row is read once and gets both its distance and its ts_rank, then
    each list takes its own top `depth` (the same orders and ties as
    keyword_list and exact_list, so fusing them gives the same answer). The
    MATERIALIZED CTE has no ORDER BY of its own, so no index scan can serve
    it: the ranking is exact. Measured against the two lists run apart in
    docs/BENCHMARKS.md ("Retrieval, round 4")."""
    schema = await vector_schema()
    args: list[Any] = [query, q]
    where = scope_sql(scope, args)
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
