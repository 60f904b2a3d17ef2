"""Retrieval under RLS at 1,000,000 chunks: recall, short answers, latency.

    DATABASE_URL=postgresql://... .venv/bin/python bench/bench_retrieval.py

(or `--data-dir DIR` for the embedded server). Loads the data set of
`retrieval_data` once into the database `centrid_bench_retrieval` (migrated
with the real CLI; reused by later runs while its fingerprint matches),
builds the HNSW index, then for each ownership size and each mode measures:
latency in the database (the service's own SQL, run as the caller, in a
transaction with the caller's claims, as a request runs it) and through
HTTP (the real `python server.py`), recall@10 against exact search over the
caller's chunks, and the share of short answers. Beside it, the anchor:
Supabase's documented `match_documents` pattern (plain `ORDER BY embedding
<=> q LIMIT k` under the same RLS, default settings) on the same data.

Set maintenance_work_mem generously on the server (2-4 GB) before the first
run: the HNSW build over 1M vectors takes minutes with it, far longer without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

import common
from common import REPO, bench_server, emit, log, machine_facts, migrate, ms, now_utc, percentile
from retrieval_data import (
    DIM,
    Plan,
    Spec,
    make_plan,
    progress,
    query_vectors,
    user_chunks,
    user_documents,
    vector_binary,
    vector_text,
)

from centrid.db.engine import with_database
from centrid.schema.tables.documents import CHUNK_SECURITY

DB_NAME = "centrid_bench_retrieval"
LIMIT = 10


# --------------------------------------------------------------------------
# Loading (once; reused while the fingerprint matches)


async def vector_schema(conn: asyncpg.Connection) -> str:
    schema: str = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    return schema


async def _reusable(admin: asyncpg.Connection, dsn: str, spec: Spec) -> bool:
    if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
        return False
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass('public.bench_meta') IS NOT NULL"):
            return False
        meta = await conn.fetchrow("SELECT fingerprint, complete FROM bench_meta")
        return meta is not None and meta["fingerprint"] == spec.fingerprint() and meta["complete"]
    finally:
        await conn.close()


async def _watch_index(dsn: str, label: str, stop: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            row = await conn.fetchrow(
                "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total FROM pg_stat_progress_create_index"
            )
            if row is not None:
                log(
                    f"  {label}: {row['phase']}, tuples {row['tuples_done']:,}/{row['tuples_total']:,}, "
                    f"blocks {row['blocks_done']:,}/{row['blocks_total']:,}"
                )
            try:
                await asyncio.wait_for(stop.wait(), timeout=15)
            except TimeoutError:
                pass
    finally:
        await conn.close()


async def build_index(dsn: str, owner: asyncpg.Connection, name: str, sql: str) -> float:
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_index(dsn, name, stop))
    started = time.perf_counter()
    try:
        await owner.execute(sql)
    finally:
        stop.set()
        await watcher
    return time.perf_counter() - started


async def ensure_declared_indexes(dsn: str, owner: asyncpg.Connection, schema: str) -> None:
    """The chunk indexes declared in CHUNK_SECURITY other than HNSW and GIN
    (timed separately), built where missing."""
    for index in CHUNK_SECURITY.indexes:
        if index.method in ("hnsw", "gin"):
            continue
        if not await owner.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{index.name}"):
            seconds = await build_index(
                dsn, owner, index.name,
                f"CREATE INDEX {index.name} ON public.document_chunks USING {index.method} {index.definition}",
            )
            await owner.execute("VACUUM ANALYZE document_chunks")
            log(f"  {index.name} in {seconds:.1f} s")


async def load(admin: asyncpg.Connection, dsn: str, plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    await common.drop_database(admin, DB_NAME)
    await common.create_database(admin, DB_NAME)
    seconds = migrate(dsn)
    log(f"  migrated with `piccolo migrations forwards all` in {seconds:.1f} s")
    owner = await asyncpg.connect(dsn)
    info: dict[str, Any] = {}
    try:
        await owner.execute("CREATE TABLE bench_meta (fingerprint text, spec jsonb, complete bool, info jsonb)")
        await owner.execute(
            "INSERT INTO bench_meta VALUES ($1, $2::jsonb, false, '{}')",
            spec.fingerprint(),
            json.dumps({"chunks": spec.chunks, "users": spec.users, "clusters": spec.clusters}),
        )
        # Bulk load without the vector and text indexes, then build them once.
        for index in CHUNK_SECURITY.indexes:
            await owner.execute(f"DROP INDEX {index.name}")
        schema = await vector_schema(owner)
        await owner.set_type_codec(
            "vector", schema=schema, encoder=lambda b: b, decoder=lambda b: b, format="binary"
        )
        started = time.perf_counter()
        await owner.execute(
            "INSERT INTO auth.users (id, email, raw_user_meta_data) "
            "SELECT id, 'bench-' || n || '@example.test', '{}'::jsonb FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)",
            plan.user_ids,
        )
        docs = []
        for n in range(spec.users):
            for doc_id, count in user_documents(plan, n):
                docs.append((doc_id, plan.user_ids[n], f"doc-{n}-{len(docs)}.txt", "text/plain", count * 100, "completed"))
        await owner.copy_records_to_table(
            "documents",
            records=docs,
            columns=["id", "user_id", "filename", "file_type", "file_size", "processing_status"],
        )
        log(f"  {spec.users:,} users, {len(docs):,} documents in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        report = progress("chunks", spec.chunks)
        batch: list[tuple[Any, ...]] = []
        done = 0
        for n in range(spec.users):
            for doc_id, index, content, vector in user_chunks(plan, n):
                batch.append((doc_id, index, content, vector_binary(vector)))
            if len(batch) >= 20_000 or n == spec.users - 1:
                await owner.copy_records_to_table(
                    "document_chunks", records=batch, columns=["document_id", "chunk_index", "content", "embedding"]
                )
                done += len(batch)
                batch = []
                report(done)
        info["load_seconds"] = time.perf_counter() - started
        log(f"  {done:,} chunks in {info['load_seconds']:.1f} s")
        indexes = {i.name: i for i in CHUNK_SECURITY.indexes}
        gin = indexes["document_chunks_search_vector_idx"]
        info["gin_seconds"] = await build_index(
            dsn, owner, gin.name, f"CREATE INDEX {gin.name} ON public.document_chunks USING {gin.method} {gin.definition}"
        )
        log(f"  GIN index in {info['gin_seconds']:.1f} s")
        await ensure_declared_indexes(dsn, owner, schema)
        hnsw = indexes["document_chunks_embedding_idx"]
        mwm = await owner.fetchval("SHOW maintenance_work_mem")
        workers = await owner.fetchval("SHOW max_parallel_maintenance_workers")
        info["maintenance_work_mem"] = mwm
        info["parallel_workers"] = workers
        log(f"  building HNSW (maintenance_work_mem {mwm}, parallel workers {workers}) ...")
        info["hnsw_seconds"] = await build_index(
            dsn,
            owner,
            hnsw.name,
            f"SET search_path = public, {schema}; "
            f"CREATE INDEX {hnsw.name} ON public.document_chunks USING {hnsw.method} {hnsw.definition}",
        )
        log(f"  HNSW index in {info['hnsw_seconds']:.1f} s")
        started = time.perf_counter()
        for table in ("documents", "document_chunks", "auth.users", "user_profiles"):
            await owner.execute(f"VACUUM ANALYZE {table}")
        info["vacuum_seconds"] = time.perf_counter() - started
        await owner.execute("UPDATE bench_meta SET complete = true, info = $1::jsonb", json.dumps(info))
    finally:
        await owner.close()
    return info


async def ensure_loaded(admin: asyncpg.Connection, server_dsn: str, plan: Plan) -> tuple[str, dict[str, Any], bool]:
    dsn = with_database(server_dsn, DB_NAME)
    if await _reusable(admin, dsn, plan.spec):
        conn = await asyncpg.connect(dsn)
        try:
            info = json.loads(await conn.fetchval("SELECT info FROM bench_meta"))
        finally:
            await conn.close()
        log(f"reusing {DB_NAME} (fingerprint {plan.spec.fingerprint()})")
        return dsn, info, True
    log(f"loading {DB_NAME}: {plan.spec.chunks:,} chunks, {plan.spec.users:,} users")
    return dsn, await load(admin, dsn, plan), False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=40, help="queries per probe user and mode")
    parser.add_argument("--http-queries", type=int, default=20, help="HTTP queries per probe size and mode")
    parser.add_argument("--load-only", action="store_true", help="load (or check) the data set and stop")
    parser.add_argument("--sizes", help="only these ownership sizes, e.g. 10000,100000")
    parser.add_argument("--exact-limit", type=int, help="override centrid.queries.search.EXACT_LIMIT (exploration)")
    parser.add_argument("--ef-search", type=int, help="override centrid.queries.search.EF_SEARCH (exploration)")
    parser.add_argument("--overfetch", type=int, help="override centrid.queries.search.OVERFETCH (exploration)")
    parser.add_argument("--iterative", help="override centrid.queries.search.ITERATIVE_SCAN (exploration)")
    parser.add_argument("--one-pass-limit", type=int,
                        help="override centrid.queries.search.ONE_PASS_LIMIT (exploration)")
    parser.add_argument("--hybrid-apart", action="store_true",
                        help="rank hybrid's two lists apart, never in one pass (ONE_PASS_LIMIT = -1)")
    common.add_common_options(parser)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> str:
    spec = Spec(chunks=args.chunks, users=args.users, clusters=args.clusters)
    plan = make_plan(spec)
    async with bench_server(args.data_dir) as bench:
        dsn, info, reused = await ensure_loaded(bench.admin, bench.server.admin_dsn, plan)
        if args.load_only:
            return json.dumps(info, indent=2)
        return await measure_all(args, bench, plan, dsn, info, reused)


# --------------------------------------------------------------------------
# Measuring


MODES = ("semantic", "hybrid", "keyword", "anchor")
# Supabase's documented match_documents pattern, as the caller, under RLS,
# default settings (hnsw.ef_search 40, no iterative scan).
ANCHOR_SQL = (
    "SELECT id FROM document_chunks ORDER BY embedding OPERATOR({schema}.<=>) $1::text::{schema}.vector LIMIT $2"
)


@dataclass
class Cell:
    """One (ownership size, mode): what it measured."""

    db_ms: list[float] = field(default_factory=list)
    http_ms: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    short: int = 0
    queries: int = 0
    paths: dict[str, int] = field(default_factory=dict)


async def reference(
    owner: asyncpg.Connection, schema: str, user: uuid.UUID, vector: str, words: str, mode: str
) -> tuple[list[uuid.UUID], int]:
    """The exact answer for `mode` (ids, best first) and how many chunks match."""
    from centrid.queries.search import fuse, hybrid_depth

    async def semantic(k: int) -> tuple[list[tuple[uuid.UUID, float]], int]:
        # Through documents (not the chunks' copied owner), so the
        # reference is independent of what the service relies on; the
        # vector parsed once (an InitPlan), `+ 0` so no index can serve it.
        rows = await owner.fetch(
            f"SELECT c.id, c.embedding OPERATOR({schema}.<=>) q.v AS d, count(*) OVER () AS n "
            f"FROM (SELECT $2::text::{schema}.vector AS v) q, documents dd JOIN document_chunks c ON c.document_id = dd.id "
            "WHERE dd.user_id = $1 AND c.embedding IS NOT NULL "
            f"ORDER BY (c.embedding OPERATOR({schema}.<=>) q.v) + 0, c.id LIMIT $3",
            user, vector, k,
        )
        return [(r["id"], r["d"]) for r in rows], (rows[0]["n"] if rows else 0)

    async def keyword(k: int) -> tuple[list[tuple[uuid.UUID, float]], int]:
        rows = await owner.fetch(
            "SELECT c.id, ts_rank(c.search_vector, q) AS r, count(*) OVER () AS n "
            "FROM websearch_to_tsquery('english', $2) q, documents dd JOIN document_chunks c ON c.document_id = dd.id "
            "WHERE dd.user_id = $1 AND c.search_vector @@ q ORDER BY r DESC, c.id LIMIT $3",
            user, words, k,
        )
        return [(r["id"], r["r"]) for r in rows], (rows[0]["n"] if rows else 0)

    if mode in ("semantic", "anchor"):
        hits, n = await semantic(LIMIT)
        return [h[0] for h in hits], n
    if mode == "keyword":
        hits, n = await keyword(LIMIT)
        return [h[0] for h in hits], n
    depth = hybrid_depth(LIMIT)
    kw, kn = await keyword(depth)
    se, sn = await semantic(depth)
    return [h.id for h in fuse(kw, se)[:LIMIT]], max(kn, sn)


async def run_service_search(engine: Any, caller: Any, body: dict[str, Any]) -> list[uuid.UUID]:
    """The service's own search code, in one transaction scoped as the caller."""
    from centrid.queries import search as sq
    from centrid.request.claims import enter_scope

    async with engine.transaction() as txn:
        await enter_scope(txn.connection, caller)
        scope = sq.Scope(owner=uuid.UUID(caller.sub), document_ids=None)
        hits = await sq.search(
            q=body.get("q"), embedding=body.get("embedding"), mode=body["mode"], limit=LIMIT, scope=scope
        )
        rows = await sq.hit_rows(hits, scope)
    return [r["id"] for r in rows]


async def run_anchor(dsn: str, schema: str, caller: Any, vector: str) -> list[uuid.UUID]:
    from centrid.request.claims import enter_scope

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await enter_scope(conn, caller)
            rows = await conn.fetch(ANCHOR_SQL.format(schema=schema), vector, LIMIT)
    finally:
        await conn.close()
    return [r["id"] for r in rows]


async def measure_db(
    plan: Plan, probes: dict[int, list[int]], queries: int, owner: asyncpg.Connection, schema: str, engine: Any,
    dsn: str, cells: dict[tuple[int, str], Cell],
) -> None:
    """Every probe user's queries in every mode, in the database, beside the
    exact reference: latency, recall and short answers into `cells`."""
    from centrid.request.claims import Caller

    for size, users in sorted(probes.items()):
        per_user = max(1, queries // len(users))
        for n in users:
            user = plan.user_ids[n]
            caller = Caller(role="authenticated", sub=str(user))
            vectors, words = query_vectors(plan, n, per_user)
            for i in range(per_user):
                vector = vector_text(vectors[i])
                embedding = [float(x) for x in vectors[i]]
                for mode in MODES:
                    cell = cells.setdefault((size, mode), Cell())
                    ref, matching = await reference(owner, schema, user, vector, words[i], mode)
                    started = time.perf_counter()
                    if mode == "anchor":
                        got = await run_anchor(dsn, schema, caller, vector)
                    else:
                        body: dict[str, Any] = {"mode": mode}
                        if mode != "keyword":
                            body["embedding"] = embedding
                        if mode != "semantic":
                            body["q"] = words[i]
                        got = await run_service_search(engine, caller, body)
                    cell.db_ms.append((time.perf_counter() - started) * 1000)
                    cell.queries += 1
                    if ref:
                        cell.recall.append(len(set(got) & set(ref)) / len(ref))
                    if len(got) < min(LIMIT, matching):
                        cell.short += 1
        log(f"  size {size:>7,}: " + ", ".join(
            f"{m} p50 {percentile(cells[(size, m)].db_ms, 50):.1f} ms recall "
            f"{(sum(cells[(size, m)].recall) / max(1, len(cells[(size, m)].recall))):.3f} short {cells[(size, m)].short}"
            for m in MODES))


async def measure_all(
    args: argparse.Namespace, bench: common.Bench, plan: Plan, dsn: str, info: dict[str, Any], reused: bool
) -> str:
    from centrid.queries import search as sq

    owner = await asyncpg.connect(dsn)
    schema = await vector_schema(owner)
    await ensure_declared_indexes(dsn, owner, schema)
    # The per-owner indexes, as an operator makes them (docs/OPERATIONS.md).
    seconds, result = common.run_cli(["centrid", "owner_indexes"], dsn)
    if result.returncode != 0:
        raise RuntimeError(f"piccolo centrid owner_indexes failed: {result.stdout}{result.stderr}")
    info["owner_indexes_run"] = f"{result.stdout.strip().splitlines()[-1]} in {seconds:.1f} s"
    info["owner_indexes"] = await owner.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'document_chunks' AND indexname LIKE 'document\\_chunks\\_owner\\_%'"
    )
    log(f"  owner indexes: {info['owner_indexes']} ({info['owner_indexes_run']})")
    sizes = await owner.fetchrow(
        "SELECT pg_relation_size('document_chunks_embedding_idx') AS hnsw, pg_relation_size('document_chunks') AS heap, "
        "pg_total_relation_size('document_chunks') AS total, (SELECT count(*) FROM document_chunks) AS chunks"
    )
    assert sizes is not None
    cells: dict[tuple[int, str], Cell] = {}
    probes = plan.probe_users
    if args.sizes:
        wanted = {int(x) for x in args.sizes.split(",")}
        probes = {k: v for k, v in probes.items() if k in wanted}
        plan.probe_users = probes
    for flag, attribute in (("exact_limit", "EXACT_LIMIT"), ("ef_search", "EF_SEARCH"), ("overfetch", "OVERFETCH"),
                            ("iterative", "ITERATIVE_SCAN"), ("one_pass_limit", "ONE_PASS_LIMIT")):
        if getattr(args, flag) is not None:
            setattr(sq, attribute, getattr(args, flag))
    if args.hybrid_apart:
        sq.ONE_PASS_LIMIT = -1
    try:
        async with common.service_engine(dsn) as engine:
            await measure_db(plan, probes, args.queries, owner, schema, engine, dsn, cells)
        if args.http_queries > 0:
            await measure_http(args, plan, dsn, cells)
        write_bench = await measure_vector_transfer(dsn, schema) if not args.sizes else {"text": 0.0, "binary": 0.0}
    finally:
        await owner.close()
    return report(args, bench, plan, info, reused, sizes, cells, write_bench, sq)


async def measure_http(args: argparse.Namespace, plan: Plan, dsn: str, cells: dict[tuple[int, str], Cell]) -> None:
    import httpx
    from bench_http import start_service, stop_service

    from centrid.request.tokens import mint_token

    # The loader migrated this database; the service must not try again
    # (its data may predate migrations written since).
    os.environ["CENTRID_AUTO_MIGRATE"] = "0"
    service = await start_service(dsn, "centrid_authenticator", 4)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30.0) as client:
            for size, users in sorted(plan.probe_users.items()):
                for i in range(args.http_queries):
                    n = users[i % len(users)]
                    token = mint_token(str(plan.user_ids[n]), "authenticated", service.secret, ttl_seconds=3600)
                    vectors, words = query_vectors(plan, n, args.http_queries, seed=11)
                    embedding = [float(x) for x in vectors[i]]
                    for mode in ("semantic", "hybrid", "keyword"):
                        body: dict[str, Any] = {"mode": mode, "limit": LIMIT}
                        if mode != "keyword":
                            body["embedding"] = embedding
                        if mode != "semantic":
                            body["q"] = words[i]
                        started = time.perf_counter()
                        r = await client.post("/api/search", json=body, headers={"Authorization": f"Bearer {token}"})
                        elapsed = (time.perf_counter() - started) * 1000
                        if r.status_code != 200:
                            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
                        cells[(size, mode)].http_ms.append(elapsed)
                log(f"  HTTP size {size:>7,}: " + ", ".join(
                    f"{m} p50 {percentile(cells[(size, m)].http_ms, 50):.1f} ms" for m in ("semantic", "hybrid", "keyword")))
    finally:
        stop_service(service)


async def measure_vector_transfer(dsn: str, schema: str) -> dict[str, float]:
    """Sending 1,000 vectors to PostgreSQL: pgvector text through asyncpg's
    text fallback (what the service does) against a registered binary codec."""
    import orjson

    from retrieval_data import vector_binary

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((1000, DIM)).astype(np.float32)
    floats = [[float(x) for x in v] for v in vectors]
    out: dict[str, float] = {}
    text_conn = await asyncpg.connect(dsn)
    binary_conn = await asyncpg.connect(dsn)
    try:
        await binary_conn.set_type_codec(
            "vector", schema=schema, format="binary",
            encoder=lambda v: vector_binary(np.asarray(v, dtype=np.float32)), decoder=lambda b: b,
        )
        for label, conn, make in (
            ("text", text_conn, lambda: [(orjson.dumps(f).decode(),) for f in floats]),
            ("binary", binary_conn, lambda: [(f,) for f in floats]),
        ):
            await conn.execute(f"CREATE TEMP TABLE transfer (v {schema}.vector({DIM}))")
            timings = []
            for _ in range(9):
                started = time.perf_counter()
                await conn.executemany("INSERT INTO transfer VALUES ($1)", make())
                timings.append((time.perf_counter() - started) * 1000)
                await conn.execute("TRUNCATE transfer")
            out[label] = percentile(timings, 50)
    finally:
        await text_conn.close()
        await binary_conn.close()
    return out


def _size(b: int) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def report(
    args: argparse.Namespace, bench: common.Bench, plan: Plan, info: dict[str, Any], reused: bool,
    sizes: Any, cells: dict[tuple[int, str], Cell], transfer: dict[str, float], sq: Any,
) -> str:
    from centrid.schema import owner_indexes

    lines = [
        f"## Retrieval under RLS at {plan.spec.chunks:,} chunks (semantic, hybrid, keyword; recall and short answers)",
        "",
        f"- Date: {now_utc()}",
        *[f"- {fact}" for fact in bench.facts],
        f"- Command: `{common.command_line()}`",
        f"- Data: {int(sizes['chunks']):,} chunks with {DIM}-d unit vectors in {plan.spec.clusters:,} clusters "
        f"topics, as a hierarchy: each document near one topic (Gaussian spread {plan.spec.doc_spread}), each chunk "
        f"near its document (spread {plan.spec.chunk_spread}), seeded and normalised; popular topics are shared by "
        "many users), "
        f"{plan.spec.users:,} users; probe users own exactly "
        + ", ".join(f"{size:,} ({len(u)} user{'s' if len(u) > 1 else ''})" for size, u in sorted(plan.probe_users.items()))
        + " chunks; the rest log-normally spread. Half the queries ask about one of the user's own documents, half "
        "land on a new document in a popularity-weighted topic (where the crowd is).",
        f"- Load: {'reused from an earlier run' if reused else 'this run'}; chunks loaded by binary COPY in "
        f"{info.get('load_seconds', 0):.0f} s; GIN index {info.get('gin_seconds', 0):.0f} s; "
        f"**HNSW build {info.get('hnsw_seconds', 0):.0f} s** (m 16, ef_construction 64, maintenance_work_mem "
        f"{info.get('maintenance_work_mem')}, {info.get('parallel_workers')} parallel worker); "
        f"**HNSW index size {_size(int(sizes['hnsw']))}**; table heap {_size(int(sizes['heap']))}, "
        f"with all indexes and TOAST {_size(int(sizes['total']))}.",
        f"- Per-owner IVFFlat indexes (`piccolo centrid owner_indexes`, owners of >= "
        f"{owner_indexes.DEFAULT_THRESHOLD:,} embedded chunks, one list per {owner_indexes.ROWS_PER_LIST} vectors, "
        f"probes 4 sqrt(lists)): {info.get('owner_indexes')} present; this run's command: "
        f"{info.get('owner_indexes_run')}.",
        f"- Strategy (centrid/queries/search.py): the owner's own index when they have one; otherwise "
        f"exact over the caller's chunks when at most {sq.EXACT_LIMIT:,}; "
        f"else HNSW with `hnsw.iterative_scan = relaxed_order`, `ef_search = {sq.EF_SEARCH}`, "
        f"`max_scan_tuples = {sq.MAX_SCAN_TUPLES:,}`, over-fetch x{sq.OVERFETCH} and exact re-sort; "
        "exact fallback when the index yields fewer than k.",
        f"- In the database: the service's own search code, one transaction scoped as the caller (claims, SET LOCAL "
        f"ROLE authenticated), wall time from the benchmark process, {args.queries} queries per size and mode, k = {LIMIT}. "
        "Anchor: Supabase's `match_documents` pattern, `ORDER BY embedding <=> q LIMIT 10` as the caller under the "
        "same RLS, default settings. Recall@10 against the exact answer over the caller's chunks (hybrid: RRF of the "
        "exact lists). Short: answers with fewer than min(10, the caller's matching chunks) hits.",
        f"- Through HTTP: `python server.py` (one process, request login centrid_authenticator), "
        f"{args.http_queries} sequential `POST /api/search` per size and mode, from an httpx client in the same "
        "machine; wall time per request.",
        "",
        "| chunks owned | mode | DB p50 | DB p99 | HTTP p50 | HTTP p99 | recall@10 | short answers |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sorted(plan.probe_users):
        for mode in MODES:
            cell = cells.get((size, mode))
            if cell is None:
                continue
            recall = sum(cell.recall) / len(cell.recall) if cell.recall else float("nan")
            http50 = ms(percentile(cell.http_ms, 50)) if cell.http_ms else "-"
            http99 = ms(percentile(cell.http_ms, 99)) if cell.http_ms else "-"
            name = "anchor (match_documents)" if mode == "anchor" else mode
            lines.append(
                f"| {size:,} | {name} | {ms(percentile(cell.db_ms, 50))} | {ms(percentile(cell.db_ms, 99))} | "
                f"{http50} | {http99} | {recall:.3f} | {cell.short}/{cell.queries} |"
            )
    lines += [
        "",
        f"Sending 1,000 vectors to PostgreSQL (`executemany` INSERT into a temporary table, median of 9, encoding "
        f"from Python floats included): pgvector text through asyncpg's text fallback "
        f"{ms(transfer['text'])}, a registered binary codec {ms(transfer['binary'])}.",
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    emit(asyncio.run(run(args)), args.output)


if __name__ == "__main__":
    main()
