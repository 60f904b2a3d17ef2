"""Per-owner HNSW indexes: a graph over one large owner's vectors only.

Why they exist: the declared HNSW index (`document_chunks_embedding_idx`)
holds every user's vectors, and RLS filters what it hands over. For an
owner of a few thousand chunks that filtering is what makes the index
path approximate (a query about a topic they have little of lands among
other users' chunks) and slow, so centrid.queries.search ranks such an
owner exactly, at about 1 us per candidate: 25 ms at 10,000 chunks,
200 ms at 100,000 (docs/BENCHMARKS.md, "Retrieval").

A partial index `... USING hnsw (embedding vector_cosine_ops) WHERE
user_id = '<owner>'` is a graph of that owner's chunks and nobody else's:
searched like any HNSW index, every row it hands over passes the policy,
so it is as fast as an unfiltered search over a table of that size, and
as accurate. The planner uses it because the search's `c.user_id =
<caller>` planner hint is a constant in the custom plan the search forces
(centrid.queries.search), and that constant implies the index predicate.
RLS still decides what the caller sees: the index only narrows what is
read, and a chunk that changes owner leaves the index as its row changes.

They are data-dependent, so no migration declares them: `piccolo centrid
owner_indexes` (centrid.commands.owner_indexes) creates one for each owner
with at least `threshold` embedded chunks and drops those whose owner fell
below half of it (hysteresis, so an owner near the line is not rebuilt on
every run), concurrently, without blocking writes. `piccolo centrid check`
accepts exactly this shape under this naming; anything else under the
prefix is drift.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import asyncpg

TABLE = "document_chunks"
PREFIX = f"{TABLE}_owner_"
SUFFIX = "_hnsw"
# Owners with at least this many embedded chunks get an index. Measured
# (docs/BENCHMARKS.md): exact ranking of 1,000 candidates takes ~3 ms and
# of 10,000 ~25 ms; the per-owner index answers either in a few ms.
DEFAULT_THRESHOLD = 5_000

_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{32}}){SUFFIX}$")

# Advisory lock key: one maintenance run at a time per database.
_LOCK_KEY = 0x63656E7472696401  # "centrid" + 1


def index_name(owner: uuid.UUID) -> str:
    """The index's name: the owner's id without dashes (59 characters,
    under PostgreSQL's 63)."""
    return f"{PREFIX}{owner.hex}{SUFFIX}"


def owner_of(name: str) -> uuid.UUID | None:
    """The owner an index name is for, or None if it is not one of these."""
    match = _NAME.match(name)
    return uuid.UUID(match.group(1)) if match else None


def definition(owner: uuid.UUID) -> str:
    """The index as `pg_get_indexdef` prints it after USING, with the
    vector extension's schema on the search_path (as the drift check reads it)."""
    return f"hnsw (embedding vector_cosine_ops) WHERE (user_id = '{owner}'::uuid)"


def is_owner_index(name: str, live_definition: str) -> bool:
    """Whether a live index is a valid per-owner index of the expected shape."""
    owner = owner_of(name)
    return owner is not None and live_definition == definition(owner)


@dataclass(frozen=True)
class Plan:
    """What a maintenance run would do."""

    create: tuple[uuid.UUID, ...]
    drop: tuple[str, ...]


_OWNERS_SQL = f"""
SELECT user_id, count(*) AS n FROM {TABLE}
WHERE embedding IS NOT NULL GROUP BY user_id HAVING count(*) >= $1
"""

# The definition as the drift check reads it: the opclass unqualified.
_EXISTING_SQL = """
SELECT ic.relname AS name, i.indisvalid AS valid,
       replace(substring(pg_get_indexdef(i.indexrelid) FROM ' USING (.*)$'),
               quote_ident(n.nspname) || '.vector_cosine_ops', 'vector_cosine_ops') AS definition
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN (pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace)
WHERE i.indrelid = $1::regclass AND ic.relname LIKE $2 AND e.extname = 'vector'
"""


async def plan(conn: asyncpg.Connection, threshold: int = DEFAULT_THRESHOLD) -> Plan:
    """Owners at or above `threshold` without a valid index get one; an
    index whose owner is below threshold // 2, that is invalid (an
    interrupted concurrent build) or not of the expected shape goes (and
    is rebuilt if its owner is still large)."""
    keep_at = max(1, threshold // 2)
    counts = {r["user_id"]: int(r["n"]) for r in await conn.fetch(_OWNERS_SQL, keep_at)}
    existing = {
        r["name"]: r["valid"] and is_owner_index(r["name"], r["definition"])
        for r in await conn.fetch(_EXISTING_SQL, TABLE, PREFIX.replace("_", "\\_") + "%")
    }
    valid_owners = {owner_of(name) for name, valid in existing.items() if valid}
    create = sorted(owner for owner, n in counts.items() if n >= threshold and owner not in valid_owners)
    drop = sorted(
        name
        for name, valid in existing.items()
        if not valid or owner_of(name) is None or owner_of(name) not in counts
    )
    return Plan(create=tuple(create), drop=tuple(drop))


async def _opclass_schema(conn: asyncpg.Connection) -> str:
    schema: str | None = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    if schema is None:
        raise RuntimeError("the vector extension is not installed: run `piccolo migrations forwards all` first")
    return schema


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def apply(conn: asyncpg.Connection, todo: Plan, *, concurrently: bool = True) -> None:
    """Drop, then create, one index at a time. `conn` must not be in a
    transaction: CREATE/DROP INDEX CONCURRENTLY cannot run in one, and each
    index that is done stays done if a later one fails."""
    how = "CONCURRENTLY " if concurrently else ""
    for name in todo.drop:
        await conn.execute(f"DROP INDEX {how}IF EXISTS public.{_quote(name)}")
    if not todo.create:
        return
    schema = _quote(await _opclass_schema(conn))
    for owner in todo.create:
        # A failed concurrent build leaves an INVALID index behind: dropped
        # first, so that IF NOT EXISTS does not keep it.
        await conn.execute(f"DROP INDEX {how}IF EXISTS public.{_quote(index_name(owner))}")
        await conn.execute(
            f"CREATE INDEX {how}{_quote(index_name(owner))} ON public.{TABLE} "
            f"USING hnsw (embedding {schema}.vector_cosine_ops) WHERE user_id = '{owner}'::uuid"
        )


async def try_lock(conn: asyncpg.Connection) -> bool:
    """One maintenance run at a time: a session-level advisory lock, freed
    when the connection closes."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY))
