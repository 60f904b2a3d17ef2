"""The per-owner vector index on the retrieval data set: recall@10 and
latency against exact search over the owner's chunks, for the large probe
owners, by search setting and (with --build) by index method and build
parameters.

    # the indexes as `piccolo centrid owner_indexes` made them:
    DATABASE_URL=postgresql://... .venv/bin/python bench/bench_owner_index.py \\
        --method ivfflat --normalized --ef 40,127 --sizes 10000,100000
    # an HNSW graph per owner instead (rebuilt under the same name):
    ... --method hnsw --build m=16,ef_construction=200 --ef 200,400,1000 --sizes 10000

`--ef` lists the values of `hnsw.ef_search`, or of `ivfflat.probes` with
`--method ivfflat`. Needs the database bench_retrieval.py loaded
(centrid_bench_retrieval). `--build` replaces the probe owners' indexes
(timed): run `piccolo centrid owner_indexes` afterwards to restore them.
Runs as the owner login with the owner as a constant predicate: this
measures the index, not RLS (bench_retrieval.py measures searches as the
caller, end to end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from common import emit, log, now_utc, percentile
from retrieval_data import Spec, make_plan, query_vectors, vector_text

from centrid.schema.owner_indexes import index_name

K = 10
FETCH = 20  # as the service: twice k through the index, re-sorted exactly


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=40, help="per size (spread over its probe owners)")
    parser.add_argument("--ef", default="100,200,400,800")
    parser.add_argument("--build", help="rebuild the probe owners' indexes WITH (...) first, e.g. m=16,ef_construction=128")
    parser.add_argument("--method", choices=("hnsw", "ivfflat"), default="hnsw",
                        help="index method for --build; with ivfflat, --ef values are ivfflat.probes")
    parser.add_argument("--normalized", action="store_true",
                        help="index and order by l2_normalize(embedding) (the shared index cannot serve that)")
    parser.add_argument("--hide-shared", action="store_true",
                        help="drop the shared HNSW index inside a transaction rolled back at the end (it and "
                             "--build's indexes are gone afterwards), so the planner cannot prefer it")
    parser.add_argument("--output", help="also write the Markdown to this file")
    return parser.parse_args()


async def rebuild(conn: asyncpg.Connection, owner: Any, options: str, method: str, column: str) -> float:
    name = index_name(owner)
    await conn.execute(f"DROP INDEX IF EXISTS {name}")
    started = time.perf_counter()
    await conn.execute(
        f"CREATE INDEX {name} ON document_chunks USING {method} ({column} extensions.vector_cosine_ops) "
        f"WITH ({options}) WHERE user_id = '{owner}'::uuid"
    )
    return time.perf_counter() - started


async def main() -> None:
    args = parse_args()
    plan = make_plan(Spec())
    base = os.environ["DATABASE_URL"]
    dsn = base.replace("/postgres?", "/centrid_bench_retrieval?")
    conn = await asyncpg.connect(dsn)
    await conn.execute("SET plan_cache_mode = force_custom_plan; SET hnsw.iterative_scan = relaxed_order")
    column = "(extensions.l2_normalize(embedding)::extensions.vector(384))" if args.normalized else "embedding"
    if args.hide_shared:
        await conn.execute("BEGIN; DROP INDEX document_chunks_embedding_idx")
    lines = [f"- Run {now_utc()}: `{' '.join(sys.argv[1:])}`", ""]
    lines.append("| owner's chunks | ef_search | recall@10 | p50 ms | p99 ms | exact p50 ms |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        users = plan.probe_users[size]
        if args.build:
            for n in users:
                seconds = await rebuild(conn, plan.user_ids[n], args.build, args.method, column)
                log(f"  rebuilt {size:,}-chunk owner's index WITH ({args.build}) in {seconds:.1f} s")
                lines.insert(1, f"- {size:,}-chunk owner's index built WITH ({args.build}) in {seconds:.1f} s")
        await conn.execute("ANALYZE document_chunks")
        work = []
        per_user = max(1, args.queries // len(users))
        for n in users:
            vectors, _ = query_vectors(plan, n, per_user)
            work += [(plan.user_ids[n], vector_text(v)) for v in vectors]
        exact: list[list[Any]] = []
        exact_ms: list[float] = []
        for owner, vector in work:
            started = time.perf_counter()
            rows = await conn.fetch(
                "SELECT id FROM document_chunks WHERE user_id = $1 AND embedding IS NOT NULL "
                "ORDER BY (embedding OPERATOR(extensions.<=>) $2::text::extensions.vector) + 0, id LIMIT $3",
                owner, vector, K)
            exact_ms.append((time.perf_counter() - started) * 1000)
            exact.append([r["id"] for r in rows])
        for ef in (int(e) for e in args.ef.split(",")):
            setting = "ivfflat.probes" if args.method == "ivfflat" else "hnsw.ef_search"
            await conn.execute(f"SET {setting} = {ef}; SET ivfflat.iterative_scan = relaxed_order")
            times: list[float] = []
            recall: list[float] = []
            for (owner, vector), ref in zip(work, exact):
                started = time.perf_counter()
                rows = await conn.fetch(
                    "WITH near AS MATERIALIZED (SELECT id, embedding OPERATOR(extensions.<=>) q.v AS d "
                    "FROM (SELECT $2::text::extensions.vector AS v) q, document_chunks WHERE user_id = $1 "
                    f"ORDER BY {column} OPERATOR(extensions.<=>) q.v LIMIT $3) "
                    "SELECT id FROM near ORDER BY d, id LIMIT $4", owner, vector, FETCH, K)
                times.append((time.perf_counter() - started) * 1000)
                recall.append(len({r["id"] for r in rows} & set(ref)) / len(ref))
            line = (f"| {size:,} | {ef} | {sum(recall) / len(recall):.3f} | {percentile(times, 50):.1f} | "
                    f"{percentile(times, 99):.1f} | {percentile(exact_ms, 50):.1f} |")
            log(line)
            lines.append(line)
    plan_text = await conn.fetch("EXPLAIN SELECT id FROM document_chunks WHERE user_id = $1 "
                                 f"ORDER BY {column} OPERATOR(extensions.<=>) $2::text::extensions.vector LIMIT 20",
                                 work[0][0], work[0][1])
    lines += ["", "Plan of the index query (last size):", "", "```", *(r[0][:160] for r in plan_text), "```"]
    if args.hide_shared:
        await conn.execute("ROLLBACK")
    await conn.close()
    emit("\n".join(lines), None if args.output is None else Path(args.output))


if __name__ == "__main__":
    asyncio.run(main())
