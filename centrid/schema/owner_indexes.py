"""Per-owner vector indexes: an IVFFlat index over one large owner's vectors only.

Why they exist: the declared HNSW index (`document_chunks_embedding_idx`)
holds every user's vectors, and RLS filters what it hands over. For an
owner of many chunks that filtering is what makes the index path
approximate (a query about a topic they have little of lands among other
users' chunks), so centrid.queries.search ranks such an owner exactly, at
about 1 us per candidate: 25 ms at 10,000 chunks, 100-200 ms at 100,000
(docs/BENCHMARKS.md, "Retrieval").

A partial index `WHERE user_id = '<owner>'` holds that owner's vectors and
nobody else's: every row it hands over passes the policy. It is IVFFlat,
not HNSW: on clustered vectors (chunks of one document are near-duplicates)
a 100,000-vector HNSW graph reached recall@10 0.85 at ef_search 400 and
0.87 at 1,000, while IVFFlat probing a tenth of its lists reached 0.99
(docs/BENCHMARKS.md, "Retrieval, round 5"). It indexes
`l2_normalize(embedding)`: the cosine distance of the normalised vector is
the cosine distance itself, and no other index has that expression, so a
search ordered by it can only be served by this index (the planner would
otherwise sometimes prefer the shared HNSW index). RLS still decides what
the caller sees: the index only narrows what is read, and a chunk that
changes owner leaves the index as its row changes.

Lists: one per ROWS_PER_LIST vectors at build time; a search probes
`probes(lists)` of them. Rows added later go to their nearest list, so an
index whose owner has grown or shrunk by more than REBUILD_FACTOR is
rebuilt.

They are data-dependent, so no migration declares them: `piccolo centrid
owner_indexes` (centrid.commands.owner_indexes) creates one for each owner
with at least `threshold` embedded chunks and drops those whose owner fell
below half of it (hysteresis, so an owner near the line is not rebuilt on
every run), concurrently, without blocking writes. `piccolo centrid check`
accepts exactly this shape under this naming; anything else under the
prefix is drift.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

import asyncpg

from centrid.schema.render import quote_ident
from centrid.schema.tables.documents import EMBEDDING_DIMENSIONS

TABLE = "document_chunks"
PREFIX = f"{TABLE}_owner_"
SUFFIX = "_ivfflat"
# Owners with at least this many embedded chunks get an index. Measured
# (docs/BENCHMARKS.md): exact ranking of 1,000 candidates takes ~3 ms and
# of 10,000 ~25 ms under RLS; the owner's index answers 10,000 in ~5 ms.
DEFAULT_THRESHOLD = 5_000
ROWS_PER_LIST = 100
# probes = PROBE_FACTOR * sqrt(lists) (pgvector suggests sqrt(lists) to
# start): 40 of 100 lists at 10,000 vectors (recall@10 0.98), 127 of 1,000
# at 100,000 (0.99 at 100 probes).
PROBE_FACTOR = 4.0
REBUILD_FACTOR = 2.0

_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{32}}){SUFFIX}$")
_LISTS = re.compile(r" WITH \(lists='(\d+)'\) ")

# Advisory lock key: one maintenance run at a time per database.
_LOCK_KEY = 0x63656E7472696401  # "centrid" + 1


def index_name(owner: uuid.UUID) -> str:
    """The index's name: the owner's id without dashes (62 characters,
    under PostgreSQL's 63)."""
    return f"{PREFIX}{owner.hex}{SUFFIX}"


def owner_of(name: str) -> uuid.UUID | None:
    """The owner an index name is for, or None if it is not one of these."""
    match = _NAME.match(name)
    return uuid.UUID(match.group(1)) if match else None


def lists_for(vectors: int) -> int:
    return max(1, round(vectors / ROWS_PER_LIST))


def probes(lists: int) -> int:
    """How many of an index's lists a search probes."""
    return max(1, min(lists, math.ceil(PROBE_FACTOR * math.sqrt(lists))))


def indexed_expression(schema: str = "") -> str:
    """What the index holds and what a search orders by, character for
    character (the planner matches expressions structurally; the drift
    check reads the unqualified form)."""
    prefix = f"{schema}." if schema else ""
    return f"({prefix}l2_normalize(embedding))::{prefix}vector({EMBEDDING_DIMENSIONS})"


def definition(owner: uuid.UUID, lists: int) -> str:
    """The index as `pg_get_indexdef` prints it after USING, with the
    vector extension's schema on the search_path (as the drift check reads it)."""
    return (
        f"ivfflat (({indexed_expression()}) vector_cosine_ops) WITH (lists='{lists}') "
        f"WHERE (user_id = '{owner}'::uuid)"
    )


def lists_of(live_definition: str) -> int | None:
    match = _LISTS.search(live_definition)
    return int(match.group(1)) if match else None


def is_owner_index(name: str, live_definition: str) -> bool:
    """Whether a live index is a per-owner index of the expected shape."""
    owner, lists = owner_of(name), lists_of(live_definition)
    return owner is not None and lists is not None and live_definition == definition(owner, lists)


@dataclass(frozen=True)
class Plan:
    """What a maintenance run would do: indexes to drop, then (owner, lists)
    to build."""

    create: tuple[tuple[uuid.UUID, int], ...]
    drop: tuple[str, ...]


_OWNERS_SQL = f"""
SELECT user_id, count(*) AS n FROM {TABLE}
WHERE embedding IS NOT NULL GROUP BY user_id HAVING count(*) >= $1
"""

# The definition as the drift check reads it: the extension's schema
# (quoted as pg_get_indexdef quotes it) left out.
_EXISTING_SQL = """
SELECT ic.relname AS name, i.indisvalid AS valid,
       replace(substring(pg_get_indexdef(i.indexrelid) FROM ' USING (.*)$'),
               quote_ident(n.nspname) || '.', '') AS definition
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN (pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace)
WHERE i.indrelid = $1::regclass AND ic.relname LIKE $2 AND e.extname = 'vector'
"""


def stale(lists: int, vectors: int) -> bool:
    """Whether the lists an owner's vectors call for now are more than
    REBUILD_FACTOR away from the lists the index was built with."""
    wanted = lists_for(vectors)
    return wanted > lists * REBUILD_FACTOR or wanted * REBUILD_FACTOR < lists


async def plan(conn: asyncpg.Connection, threshold: int = DEFAULT_THRESHOLD) -> Plan:
    """Owners at or above `threshold` without a good index get one. An
    index goes if its owner is below threshold // 2, if it is invalid (an
    interrupted concurrent build) or not of the expected shape, or if its
    owner's vectors are no longer what its lists were made for (then it is
    rebuilt)."""
    keep_at = max(1, threshold // 2)
    counts = {r["user_id"]: int(r["n"]) for r in await conn.fetch(_OWNERS_SQL, keep_at)}
    good: set[uuid.UUID] = set()
    drop: list[str] = []
    for r in await conn.fetch(_EXISTING_SQL, TABLE, PREFIX.replace("_", "\\_") + "%"):
        owner, lists = owner_of(r["name"]), lists_of(r["definition"])
        shaped = r["valid"] and is_owner_index(r["name"], r["definition"])
        if shaped and owner is not None and lists is not None and owner in counts and not stale(lists, counts[owner]):
            good.add(owner)
        else:
            drop.append(r["name"])
    # A stale or misshapen index of an owner still above half the threshold
    # is rebuilt, not just dropped.
    dropped = {owner_of(name) for name in drop}
    create = sorted(
        (owner, lists_for(n))
        for owner, n in counts.items()
        if owner not in good and (n >= threshold or owner in dropped)
    )
    return Plan(create=tuple(create), drop=tuple(sorted(drop)))


async def _extension_schema(conn: asyncpg.Connection) -> str:
    schema: str | None = await conn.fetchval(
        "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    if schema is None:
        raise RuntimeError("the vector extension is not installed: run `piccolo migrations forwards all` first")
    return schema


async def apply(conn: asyncpg.Connection, todo: Plan, *, concurrently: bool = True) -> None:
    """Drop, then create, one index at a time. `conn` must not be in a
    transaction: CREATE/DROP INDEX CONCURRENTLY cannot run in one, and each
    index that is done stays done if a later one fails. While an owner's
    index is being rebuilt their searches are exact."""
    how = "CONCURRENTLY " if concurrently else ""
    for name in todo.drop:
        await conn.execute(f"DROP INDEX {how}IF EXISTS public.{quote_ident(name)}")
    if not todo.create:
        return
    schema = await _extension_schema(conn)
    for owner, lists in todo.create:
        # A failed concurrent build leaves an INVALID index behind.
        await conn.execute(f"DROP INDEX {how}IF EXISTS public.{quote_ident(index_name(owner))}")
        await conn.execute(
            f"CREATE INDEX {how}{quote_ident(index_name(owner))} ON public.{TABLE} "
            f"USING ivfflat (({indexed_expression(schema)}) {schema}.vector_cosine_ops) "
            f"WITH (lists = {int(lists)}) WHERE user_id = '{owner}'::uuid"
        )


async def try_lock(conn: asyncpg.Connection) -> bool:
    """One maintenance run at a time: a session-level advisory lock, freed
    when the connection closes."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY))
