"""Chunk length against vector storage: what a caller's search costs when
chunks carry real amounts of text.

    DATABASE_URL=postgresql://... .venv/bin/python bench/bench_chunk_storage.py

(or `--data-dir DIR` for the embedded server). bench_retrieval's chunks
carry about 90 characters, so a row (1.5 kB of vector, the text, its
tsvector) stays under the ~2 kB at which PostgreSQL moves values out of
line, and the vectors stay in the row whatever the column's storage mode.
Real chunks carry hundreds to thousands of characters. Then pgvector's
default storage for `vector` (EXTERNAL) sends the vector to TOAST, and the
exact scan (centrid.queries.search) fetches it from there for every
candidate; with longer text the tsvector goes too, and keyword search pays
the same. The declared storage (centrid.schema.tables.documents: vector and
tsvector MAIN, toast_tuple_target 4080) keeps both in the row and moves the
text instead.

In a scratch database migrated with the real CLI, for each case (chunks
owned x characters per chunk) three owners get the same chunks (same text,
same vectors), written under: PostgreSQL's defaults (the storage
migration's backwards SQL); the vector alone kept in the row (the simpler
alternative); the declaration (its forwards SQL). All are then searched in
turn, as the caller, by the service's own code in one transaction (as
bench_retrieval measures "in the database"), in the three modes. Only the
exact path runs (every case is under EXACT_LIMIT), so the vector and text
indexes are left out of the load.
Other users' short chunks (`--filler`) make the owners a minority of the
table, as in production, so the planner reaches them through the owner
index rather than a scan of a table that is mostly theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

import common
from bench_retrieval import run_service_search, vector_schema
from common import bench_server, emit, log, migrate, percentile
from retrieval_data import DIM, progress, vector_binary

from centrid.schema.render import storage_backwards_sql, storage_forwards_sql
from centrid.schema.tables.documents import CHUNK_SECURITY

MODES = ("semantic", "keyword", "hybrid")
# How each owner's chunks are written: PostgreSQL's defaults (the storage
# migration's backwards SQL); only the vector kept in the row (the simpler
# alternative to the declaration); the declaration (its forwards SQL).
STORAGES = ("defaults", "vector only", "declared")


def storage_sql(storage: str) -> str:
    if storage == "declared":
        return storage_forwards_sql(CHUNK_SECURITY)
    reset = storage_backwards_sql(CHUNK_SECURITY)
    if storage == "vector only":
        return reset + "\nALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE MAIN;"
    return reset
CHUNKS_PER_DOCUMENT = 50
DEFAULT_CASES = "10000:90,10000:500,10000:1000,10000:2000,100000:1000"


@dataclass(frozen=True)
class Case:
    chunks: int
    chars: int


@dataclass
class Owner:
    case: Case
    storage: str
    user: uuid.UUID
    vectors_out: float = 0.0  # share of vectors in TOAST
    tsvectors_out: float = 0.0  # share of tsvectors in TOAST
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})


class Text:
    """Deterministic prose-like text: a Zipf-distributed vocabulary of
    syllable words, so it compresses about as English does (pglz)."""

    SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]

    def __init__(self, seed: int, words: int = 8000) -> None:
        self.rng = np.random.default_rng(seed)
        lengths = self.rng.integers(1, 4, size=words)
        self.vocabulary = [
            "".join(self.SYLLABLES[i] for i in self.rng.integers(0, len(self.SYLLABLES), size=n)) for n in lengths
        ]
        weights = 1.0 / np.arange(1, words + 1)
        self.p = weights / weights.sum()

    def chunk(self, chars: int) -> str:
        words = self.rng.choice(len(self.vocabulary), size=chars // 4 + 4, p=self.p)
        return " ".join(self.vocabulary[w] for w in words)[:chars].strip()

    def query(self) -> str:
        # Two words of middling frequency: some chunks match both, most none.
        ranks = self.rng.integers(20, 200, size=2)
        return " ".join(self.vocabulary[r] for r in ranks)


def parse_cases(text: str) -> list[Case]:
    cases = []
    for part in text.split(","):
        chunks, chars = part.split(":")
        cases.append(Case(int(chunks), int(chars)))
    return cases


async def add_documents(owner: asyncpg.Connection, users: Sequence[uuid.UUID], per_user: int, label: str) -> list[uuid.UUID]:
    """`users` in auth.users, each with `per_user` documents; the documents' ids."""
    await owner.execute(
        "INSERT INTO auth.users (id, email, raw_user_meta_data) "
        "SELECT id, $2 || '-' || id || '@example.test', '{}'::jsonb FROM unnest($1::uuid[]) AS u(id)",
        list(users), label,
    )
    documents = [(uuid.uuid4(), user) for user in users for _ in range(per_user)]
    await owner.copy_records_to_table(
        "documents",
        records=[(d, u, f"{label}-{i}.txt", "text/plain", 1000, "completed") for i, (d, u) in enumerate(documents)],
        columns=["id", "user_id", "filename", "file_type", "file_size", "processing_status"],
    )
    return [d for d, _ in documents]


async def load_chunks(
    owner: asyncpg.Connection, documents: Sequence[uuid.UUID], count: int, chars: int, seed: int, label: str
) -> None:
    """`count` chunks of `chars` characters with unit vectors, dealt out to
    `documents` in turn, by binary COPY; the same seed gives the same chunks."""
    text = Text(seed)
    rng = np.random.default_rng(seed)
    report = progress(label, count)
    done = 0
    while done < count:
        n = min(10_000, count - done)
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch = [
            (documents[(done + i) % len(documents)], (done + i) // len(documents), text.chunk(chars),
             vector_binary(vectors[i]))
            for i in range(n)
        ]
        await owner.copy_records_to_table(
            "document_chunks", records=batch, columns=["document_id", "chunk_index", "content", "embedding"]
        )
        done += n
        report(done)


async def load_owner(owner: asyncpg.Connection, case: Case, storage: str, seed: int) -> Owner:
    """One user with `case.chunks` chunks, written under `storage`."""
    user = uuid.uuid4()
    documents = await add_documents(owner, [user], -(-case.chunks // CHUNKS_PER_DOCUMENT), "storage")
    await owner.execute(storage_sql(storage))
    await load_chunks(owner, documents, case.chunks, case.chars, seed, f"{case.chunks:,} x {case.chars:,} chars, {storage}")
    return Owner(case, storage, user)


async def load_filler(owner: asyncpg.Connection, chunks: int, users: int = 1000) -> None:
    """`chunks` short chunks over `users` other users, one document each."""
    if chunks <= 0:
        return
    documents = await add_documents(owner, [uuid.uuid4() for _ in range(users)], 1, "filler")
    await load_chunks(owner, documents, chunks, 90, 12345, "filler chunks")


async def run(args: argparse.Namespace) -> str:
    from centrid.request.claims import Caller

    cases = parse_cases(args.cases)
    async with bench_server(args.data_dir) as bench:
        async with common.scratch_database(bench.admin, bench.server, "storage") as dsn:
            log(f"  migrated in {migrate(dsn):.1f} s")
            owner = await asyncpg.connect(dsn)
            try:
                schema = await vector_schema(owner)
                await owner.set_type_codec("vector", schema=schema, encoder=lambda b: b, decoder=lambda b: b,
                                           format="binary")
                # Neither index serves a caller's exact search; both only slow the load.
                for index in ("document_chunks_embedding_idx", "document_chunks_search_vector_idx"):
                    await owner.execute(f"DROP INDEX {index}")
                owners: list[Owner] = []
                started = time.perf_counter()
                await load_filler(owner, args.filler)
                for i, case in enumerate(cases):
                    for storage in STORAGES:
                        owners.append(await load_owner(owner, case, storage, seed=i))
                await owner.execute(storage_forwards_sql(CHUNK_SECURITY))
                await owner.execute("VACUUM ANALYZE document_chunks")
                load_seconds = time.perf_counter() - started
                for o in owners:
                    shares = await owner.fetchrow(
                        "SELECT avg((pg_column_toast_chunk_id(embedding) IS NOT NULL)::int)::float8 AS v, "
                        "avg((pg_column_toast_chunk_id(search_vector) IS NOT NULL)::int)::float8 AS t "
                        "FROM document_chunks WHERE user_id = $1", o.user,
                    )
                    assert shares is not None
                    o.vectors_out, o.tsvectors_out = shares["v"], shares["t"]
                sizes = await owner.fetchrow(
                    "SELECT pg_relation_size('document_chunks') AS heap, "
                    "pg_relation_size(reltoastrelid) AS toast FROM pg_class WHERE relname = 'document_chunks'"
                )
                assert sizes is not None
                async with common.service_engine(dsn) as engine:
                    rng = np.random.default_rng(99)
                    words = Text(1000)
                    for q in range(args.queries + 1):  # the first round warms the cache, not counted
                        vector = rng.standard_normal(DIM)
                        embedding = [float(x) for x in vector / np.linalg.norm(vector)]
                        phrase = words.query()
                        for o in owners:
                            caller = Caller(role="authenticated", sub=str(o.user))
                            for mode in MODES:
                                body: dict[str, Any] = {"mode": mode}
                                if mode != "keyword":
                                    body["embedding"] = embedding
                                if mode != "semantic":
                                    body["q"] = phrase
                                t0 = time.perf_counter()
                                await run_service_search(engine, caller, body)
                                if q:
                                    o.times[mode].append((time.perf_counter() - t0) * 1000)
                        if q and q % 5 == 0:
                            log(f"  {q}/{args.queries} query rounds")
            finally:
                await owner.close()
    return report(args, bench, owners, load_seconds, dict(sizes))


def report(args: argparse.Namespace, bench: common.Bench, owners: Sequence[Owner], load_seconds: float,
           sizes: dict[str, int]) -> str:
    lines = [
        f"## Chunk storage ({common.now_utc()})",
        "",
        *(f"- {fact}" for fact in bench.facts),
        f"- Command: `{common.command_line()}`",
        f"- Load: {args.filler:,} other users' chunks of 90 characters, then {len(owners)} owners, in {load_seconds:.0f} s; document_chunks heap {sizes['heap'] / 2**20:,.0f} MiB, "
        f"TOAST {sizes['toast'] / 2**20:,.0f} MiB",
        f"- {args.queries} queries per owner and mode, owners interleaved, after one warm-up round; "
        "times in the database (the service's search code, as the caller, one transaction)",
        "",
        "| chunks owned | characters per chunk | storage | vectors / tsvectors in TOAST | semantic p50 / p99 "
        "| keyword p50 / p99 | hybrid p50 / p99 | p50 against the defaults (semantic, keyword, hybrid) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_case: dict[Case, dict[str, Owner]] = {}
    for o in owners:
        by_case.setdefault(o.case, {})[o.storage] = o
    for case, pair in by_case.items():
        for storage in STORAGES:
            o = pair[storage]
            cells = [f"{percentile(o.times[m], 50):.1f} / {percentile(o.times[m], 99):.1f} ms" for m in MODES]
            ratio = ""
            if storage != "defaults":
                ratio = " / ".join(
                    f"{percentile(pair['defaults'].times[m], 50) / percentile(o.times[m], 50):.2f}x" for m in MODES
                )
            lines.append(
                f"| {case.chunks:,} | {case.chars:,} | {storage} | {o.vectors_out:.0%} / {o.tsvectors_out:.0%} | "
                + " | ".join(cells) + f" | {ratio} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="chunks:characters pairs, e.g. 10000:1000,100000:1000")
    parser.add_argument("--queries", type=int, default=20, help="queries per owner and mode")
    parser.add_argument("--filler", type=int, default=600_000, help="other users' short chunks")
    common.add_common_options(parser)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    emit(asyncio.run(run(args)), args.output)


if __name__ == "__main__":
    main()
