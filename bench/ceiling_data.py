"""The realistic database the ceiling benchmark reuses across runs.

10,000 users, 1,000,000 documents (100 each) and 1,000,000 chunks with
text, in one database (`centrid_bench_ceiling`) on the benchmark server:
DATABASE_URL's server if set, else an embedded PostgreSQL whose data stays
in `.centrid-bench/` (gitignored) so the load (a few minutes) happens once.
The schema comes from the project's own migrations (`piccolo migrations
forwards all`, the real CLI); the rows are written set-based, in batches,
as the table owner, with progress on stderr.

Each chunk's text is 16 terms drawn from a vocabulary of 5,000 made-up
words (`term0` ... `term4999`), so a one-word search matches about 0.3% of
all chunks (and, under RLS, about 3 of the caller's 100).

Rows the benchmark's POSTs add are marked by their filename and deleted
after every run (`delete_posted`), so the data never grows across runs.

    .venv/bin/python bench/ceiling_data.py        # load (or check) the data
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from common import REPO, Server, create_database, log, migrate, start_server
from centrid.db.engine import with_database

DATABASE = "centrid_bench_ceiling"
DEFAULT_DATA_DIR = REPO / ".centrid-bench"
USERS = 10_000
DOCUMENTS_PER_USER = 100
BATCH_DOCUMENTS = 50_000
VOCABULARY = 5_000
TERMS_PER_CHUNK = 16
POSTED_PREFIX = "bench-post-"  # filename of every document the benchmark's POSTs create

# One batch: documents numbered $1+1 .. $1+$2, each with one chunk. Owners
# round-robin over the users; created_at spreads one minute apart.
_BATCH_SQL = f"""
WITH users AS (SELECT array_agg(id ORDER BY email) AS ids FROM auth.users),
docs AS (
    INSERT INTO documents (user_id, filename, file_type, file_size, processing_status,
                           content_text, storage_path, created_at, updated_at)
    SELECT users.ids[1 + g % {USERS}],
           'document-' || g || '.txt', 'text/plain', 1000 + g % 100000,
           (ARRAY['completed', 'pending', 'processing', 'failed'])[1 + g % 4],
           'Report ' || g || ' on quarterly revenue, churn and the onboarding funnel',
           'documents/' || g,
           now() - g * interval '1 minute', now() - g * interval '1 minute'
    FROM users, generate_series($1::int + 1, $1::int + $2::int) AS g
    RETURNING id, file_size
)
INSERT INTO document_chunks (document_id, chunk_index, content, section_title)
SELECT docs.id, 0,
       (SELECT string_agg('term' || ((hashtext(docs.id::text)::bigint + 2147483648 + i * 104729) % {VOCABULARY}), ' ')
        FROM generate_series(1, {TERMS_PER_CHUNK}) AS i),
       'Section ' || docs.file_size % 10
FROM docs
"""


@dataclass(frozen=True)
class BenchData:
    server: Server
    owner_dsn: str  # the benchmark database, as its owner
    users: int
    documents: int
    chunks: int


def server_for(data_dir: Path | None) -> Server:
    return start_server(data_dir or DEFAULT_DATA_DIR)


async def _database_exists(admin_dsn: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE))
    finally:
        await conn.close()


async def _counts(owner: asyncpg.Connection) -> tuple[int, int, int]:
    users = await owner.fetchval("SELECT count(*) FROM auth.users")
    documents = await owner.fetchval("SELECT count(*) FROM documents")
    chunks = await owner.fetchval("SELECT count(*) FROM document_chunks")
    return int(users), int(documents), int(chunks)


async def _load(owner: asyncpg.Connection) -> None:
    await owner.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
    if await owner.fetchval("SELECT count(*) FROM auth.users") == 0:
        await owner.execute(
            """
            INSERT INTO auth.users (email, raw_user_meta_data)
            SELECT 'bench-' || lpad(g::text, 5, '0') || '@example.test',
                   jsonb_build_object('name', 'Bench user ' || g)
            FROM generate_series(1, $1::int) AS g
            """,
            USERS,
        )
        log(f"  {USERS:,} users (profiles by the auth trigger)")
    total = USERS * DOCUMENTS_PER_USER
    done = int(await owner.fetchval("SELECT count(*) FROM documents"))
    started = time.perf_counter()
    while done < total:
        batch = min(BATCH_DOCUMENTS, total - done)
        await owner.execute(_BATCH_SQL, done, batch)
        done += batch
        elapsed = time.perf_counter() - started
        log(f"  {done:,} / {total:,} documents and chunks ({elapsed:.0f} s)")
    log("  VACUUM ANALYZE")
    await owner.execute("VACUUM ANALYZE")


async def delete_posted(owner_dsn: str) -> int:
    """Remove what the benchmark's POSTs created (their chunks cascade)."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        status = await conn.execute("DELETE FROM documents WHERE filename LIKE $1", POSTED_PREFIX + "%")
        return int(status.split()[-1])
    finally:
        await conn.close()


async def ensure_data(server: Server) -> BenchData:
    """Create, migrate and load the database unless it is already complete."""
    owner_dsn = with_database(server.admin_dsn, DATABASE)
    if not await _database_exists(server.admin_dsn):
        admin = await asyncpg.connect(server.admin_dsn)
        try:
            await create_database(admin, DATABASE)
        finally:
            await admin.close()
        log(f"created database {DATABASE}")
    seconds = migrate(owner_dsn)
    log(f"migrations forwards all: {seconds:.1f} s")
    await delete_posted(owner_dsn)
    owner = await asyncpg.connect(owner_dsn)
    try:
        counts = await _counts(owner)
        if counts != (USERS, USERS * DOCUMENTS_PER_USER, USERS * DOCUMENTS_PER_USER):
            log(f"loading data (have users/documents/chunks {counts})")
            await _load(owner)
            counts = await _counts(owner)
    finally:
        await owner.close()
    users, documents, chunks = counts
    log(f"data: {users:,} users, {documents:,} documents, {chunks:,} chunks")
    return BenchData(server, owner_dsn, users, documents, chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description="Load (once) the ceiling benchmark's database.")
    parser.add_argument("--data-dir", type=Path, help=f"embedded PostgreSQL data directory (default {DEFAULT_DATA_DIR})")
    args = parser.parse_args()
    server = server_for(args.data_dir)
    try:
        asyncio.run(ensure_data(server))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
