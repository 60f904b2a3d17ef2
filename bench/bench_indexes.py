#!/usr/bin/env python
"""Benchmark: what the documents indexes buy an RLS-scoped caller (SC-005).

Loads 1,000,000 documents spread over 10,000 users (set-based SQL as the
table owner: auth.users rows, whose trigger creates the profiles, then
documents from generate_series, in batches), VACUUM ANALYZE, then, as an
`authenticated` caller scoped exactly as a request is
(centrid.request.claims.enter_scope inside a transaction), runs EXPLAIN
(ANALYZE, BUFFERS) on the listings the API serves. The queries carry no
`WHERE user_id`: row level security adds `user_id = (select auth.uid())`,
which is the point. Each query is measured with three index sets:

- composite: the indexes the migrations create (as shipped);
- single-column: the composites dropped, `documents_processing_status`
  kept and a plain `(created_at DESC)` index created, i.e. the minimum the
  design lists;
- none: the composites and `documents_processing_status` dropped.

Index changes happen inside the measuring transaction (as the owner, before
the role switches) and are rolled back, so the shipped indexes return.

The server, machine facts and output are common.py's (DATABASE_URL if set,
else an embedded PostgreSQL in a temporary directory or --data-dir).

Progress goes to stderr; the Markdown section for docs/BENCHMARKS.md goes
to stdout (and to --output if given).

    .venv/bin/python bench/bench_indexes.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from common import (
    add_common_options,
    bench_server,
    command_line,
    create_auth_users,
    emit,
    log,
    migrate,
    ms,
    now_utc,
    scratch_database,
)
from centrid.request.claims import Caller, enter_scope  # after common, which puts the repository on sys.path


# --------------------------------------------------------------------------
# Loading


STATUS_MIX = "85% completed, 5% pending, 5% processing, 5% failed"

LOAD_DOCUMENTS_SQL = """
INSERT INTO documents (user_id, filename, file_type, file_size, processing_status,
                       content_text, storage_path, created_at, updated_at)
SELECT u.id,
       'document-' || s.g || '.' || s.ft,
       s.ft,
       1000 + ((s.g::bigint * 7919) % 5000000)::int,
       CASE WHEN s.r < 0.85 THEN 'completed'
            WHEN s.r < 0.90 THEN 'pending'
            WHEN s.r < 0.95 THEN 'processing'
            ELSE 'failed' END,
       'Report ' || s.g || ' on quarterly revenue, churn and the onboarding funnel',
       'documents/' || u.id || '/' || s.g,
       s.ts,
       s.ts + interval '5 minutes'
FROM (SELECT g,
             random() AS r,
             (ARRAY['pdf', 'docx', 'txt', 'md'])[1 + g % 4] AS ft,
             now() - random() * interval '730 days' AS ts
      FROM generate_series($1::int, $2::int) AS g) AS s
JOIN bench_users AS u ON u.n = s.g % $3::int
"""


async def load(owner: asyncpg.Connection, users: int, documents: int, batch: int) -> dict[str, Any]:
    started = time.perf_counter()
    await create_auth_users(owner, users)
    log(f"  {users:,} auth users (and their profiles, by trigger) in {time.perf_counter() - started:.1f} s")
    # A numbered copy of the users, so document g belongs to user g % users.
    await owner.execute(
        """
        CREATE TEMP TABLE bench_users AS
            SELECT (row_number() OVER (ORDER BY created_at, id) - 1)::int AS n, id FROM auth.users;
        CREATE UNIQUE INDEX ON bench_users (n);
        ANALYZE bench_users;
        """
    )
    await owner.execute("SELECT setseed(0.42)")  # the same data on every run
    loaded = 0
    docs_started = time.perf_counter()
    while loaded < documents:
        n = min(batch, documents - loaded)
        t = time.perf_counter()
        await owner.execute(LOAD_DOCUMENTS_SQL, loaded, loaded + n - 1, users)
        loaded += n
        elapsed = time.perf_counter() - t
        log(f"  documents {loaded:>10,} / {documents:,}  batch {elapsed:5.1f} s  ({n / elapsed:,.0f} rows/s)")
    docs_seconds = time.perf_counter() - docs_started
    t = time.perf_counter()
    await owner.execute("VACUUM ANALYZE documents")
    await owner.execute("VACUUM ANALYZE user_profiles")
    await owner.execute("VACUUM ANALYZE auth.users")
    vacuum_seconds = time.perf_counter() - t
    log(f"  VACUUM ANALYZE in {vacuum_seconds:.1f} s")
    sizes = await owner.fetchrow(
        """
        SELECT pg_size_pretty(pg_relation_size('documents')) AS heap,
               pg_size_pretty(pg_indexes_size('documents')) AS indexes,
               pg_size_pretty(pg_total_relation_size('documents')) AS total
        """
    )
    assert sizes is not None
    return {
        "documents_seconds": docs_seconds,
        "vacuum_seconds": vacuum_seconds,
        "heap": sizes["heap"],
        "indexes": sizes["indexes"],
        "total": sizes["total"],
    }


# --------------------------------------------------------------------------
# Measuring

COLUMNS = "id, user_id, filename, file_type, file_size, processing_status, created_at"


@dataclass(frozen=True)
class Query:
    key: str
    title: str
    sql: str
    keyset: bool = False  # takes the last row of the first page as $1, $2


QUERIES = (
    Query("newest", "the caller's 20 newest documents",
          f"SELECT {COLUMNS} FROM documents ORDER BY created_at DESC, id DESC LIMIT 20"),
    Query("failed", "the caller's newest documents with status 'failed'",
          f"SELECT {COLUMNS} FROM documents WHERE processing_status = 'failed' "
          "ORDER BY created_at DESC, id DESC LIMIT 20"),
    Query("next_page", "the next page of the newest documents (keyset: after the 20th row)",
          f"SELECT {COLUMNS} FROM documents WHERE (created_at, id) < ($1, $2) "
          "ORDER BY created_at DESC, id DESC LIMIT 20",
          keyset=True),
)


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    setup: tuple[str, ...]  # run as the owner inside the transaction, rolled back after


VARIANTS = (
    Variant("composite", "composite indexes (as shipped)", ()),
    Variant(
        "single",
        "single-column indexes only",
        (
            "DROP INDEX documents_user_created_idx, documents_user_status_created_idx",
            "CREATE INDEX bench_documents_created_at_idx ON documents (created_at DESC)",
        ),
    ),
    Variant(
        "none",
        "no indexes",
        ("DROP INDEX documents_user_created_idx, documents_user_status_created_idx, documents_processing_status",),
    ),
)


@dataclass
class Measurement:
    execution_ms: list[float] = field(default_factory=list)
    planning_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    access: str = ""
    buffers: str = ""
    removed: int = 0
    rows: int = 0
    plan_text: str = ""


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("Plans", []):
        out.extend(_walk(child))
    return out


def access_paths(plan: dict[str, Any]) -> str:
    parts = []
    for node in _walk(plan):
        kind = node["Node Type"]
        if "Scan" not in kind:
            continue
        if "Index Name" in node:
            parts.append(f"{kind} on `{node['Index Name']}`")
        elif node.get("Relation Name") == "documents":
            parts.append(kind)
    return ", ".join(parts)


def removed_by_filter(plan: dict[str, Any]) -> int:
    return sum(int(n.get("Rows Removed by Filter", 0)) for n in _walk(plan))


def trim_plan(lines: list[str]) -> str:
    """The plan without planning buffers, worker detail and per-node buffer
    lines below the top one."""
    kept: list[str] = []
    seen_buffers = False
    skip_planning = False
    for line in lines:
        stripped = line.strip()
        if stripped == "Planning:":
            skip_planning = True
            continue
        if skip_planning and stripped.startswith("Buffers:"):
            continue
        skip_planning = False
        if stripped.startswith("Worker ") or stripped.startswith("Full-sort Groups"):
            continue
        if stripped.startswith("Buffers:"):
            if seen_buffers:
                continue
            seen_buffers = True
        kept.append(line)
    return "\n".join(kept)


async def measure_variant(
    owner: asyncpg.Connection, variant: Variant, caller: Caller, first_page_last: asyncpg.Record, repeat: int
) -> dict[str, Measurement]:
    results: dict[str, Measurement] = {}
    tr = owner.transaction()
    await tr.start()
    try:
        for ddl in variant.setup:
            await owner.execute(ddl)
        # From here on the transaction is the caller's, exactly as a request's.
        await enter_scope(owner, caller)
        for q in QUERIES:
            args: tuple[Any, ...] = (first_page_last["created_at"], first_page_last["id"]) if q.keyset else ()
            m = Measurement()
            # The rows: RLS alone must have narrowed them to the caller.
            rows = await owner.fetch(q.sql, *args)
            if any(str(r["user_id"]) != caller.sub for r in rows):
                raise RuntimeError(f"{q.key}: saw another user's rows; RLS is not filtering")
            m.rows = len(rows)
            await owner.fetch("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + q.sql, *args)  # warm-up
            for _ in range(repeat):
                raw = await owner.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + q.sql, *args)
                doc = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                m.execution_ms.append(float(doc["Execution Time"]))
                m.planning_ms.append(float(doc["Planning Time"]))
                plan = doc["Plan"]
                m.access = access_paths(plan)
                m.removed = removed_by_filter(plan)
                m.buffers = f"hit {plan.get('Shared Hit Blocks', 0):,}, read {plan.get('Shared Read Blocks', 0):,}"
                if "JIT" in doc:
                    m.access += " (JIT)"
            for _ in range(repeat):
                t = time.perf_counter()
                await owner.fetch(q.sql, *args)
                m.round_trip_ms.append((time.perf_counter() - t) * 1000)
            text = await owner.fetch("EXPLAIN (ANALYZE, BUFFERS) " + q.sql, *args)
            m.plan_text = trim_plan([r[0] for r in text])
            results[q.key] = m
            log(
                f"  {variant.key:9} {q.key:9} median {statistics.median(m.execution_ms):9.3f} ms  "
                f"[{m.access}]  rows {m.rows}"
            )
    finally:
        await tr.rollback()
    return results


async def run(args: argparse.Namespace) -> str:
    async with bench_server(args.data_dir) as bench:
        facts = bench.facts
        async with scratch_database(bench.admin, bench.server, "idx") as dsn:
            migrate_seconds = migrate(dsn)
            log(f"  migrated with `piccolo migrations forwards all` in {migrate_seconds:.1f} s")
            owner = await asyncpg.connect(dsn)
            try:
                loaded = await load(owner, args.users, args.documents, args.batch)
                caller_n = args.users // 2
                sub = str(await owner.fetchval(
                    "SELECT id FROM auth.users ORDER BY created_at, id OFFSET $1 LIMIT 1", caller_n
                ))
                owned = await owner.fetchrow(
                    "SELECT count(*) AS total, count(*) FILTER (WHERE processing_status = 'failed') AS failed "
                    "FROM documents WHERE user_id = $1::uuid",
                    sub,
                )
                assert owned is not None
                caller = Caller(role="authenticated", sub=sub)
                first_page = await owner.fetch(
                    "SELECT created_at, id FROM documents WHERE user_id = $1::uuid "
                    "ORDER BY created_at DESC, id DESC LIMIT 20",
                    sub,
                )
                parallel_safe = await owner.fetchval(
                    "SELECT proparallel FROM pg_proc WHERE oid = 'auth.uid()'::regprocedure"
                )
                log(f"caller {sub}: {owned['total']} documents, {owned['failed']} failed")
                results: dict[str, dict[str, Measurement]] = {}
                for variant in VARIANTS:
                    results[variant.key] = await measure_variant(owner, variant, caller, first_page[-1], args.repeat)
                left = await owner.fetchval(
                    "SELECT count(*) FROM pg_indexes WHERE tablename = 'documents' AND indexname = ANY($1::text[])",
                    ["documents_user_created_idx", "documents_user_status_created_idx", "documents_processing_status"],
                )
                if left != 3:
                    raise RuntimeError("the rolled-back DROP INDEX did not restore the indexes")
            finally:
                await owner.close()

    def med(v: str, q: str) -> float:
        return statistics.median(results[v][q].execution_ms)

    lines = [
        "## Index effect: an RLS-scoped caller's document listings (SC-005)",
        "",
        f"- Date: {now_utc()}",
        *[f"- {fact}" for fact in facts],
        f"- Command: `{command_line()}`",
        f"- Data: {args.documents:,} documents over {args.users:,} users "
        f"({args.documents // args.users} each; status mix {STATUS_MIX}; `created_at` spread "
        f"uniformly over the last 730 days), loaded as the table owner with `INSERT ... SELECT FROM "
        f"generate_series` in batches of {args.batch:,}: {loaded['documents_seconds']:.1f} s, "
        f"then VACUUM ANALYZE {loaded['vacuum_seconds']:.1f} s. `documents`: heap {loaded['heap']}, "
        f"indexes {loaded['indexes']}, total {loaded['total']}.",
        f"- Caller: role `authenticated`, claims and role set by `centrid.request.claims.enter_scope` "
        f"in a transaction, as for an HTTP request; the caller owns {owned['total']} documents, "
        f"{owned['failed']} of them failed. The SQL has no `WHERE user_id`: row level security adds "
        "`user_id = (select auth.uid())` (the InitPlan in the plans below).",
        f"- Method: per query and index set, one warm-up, then {args.repeat} runs of "
        "`EXPLAIN (ANALYZE, BUFFERS)`; figures are the median of PostgreSQL's reported Execution "
        "Time. Index sets other than the shipped one are made inside the measuring transaction "
        "(as the owner, before the role switch) and rolled back. *single-column*: the composites "
        "dropped, `documents_processing_status` kept, a plain `(created_at DESC)` index added. "
        "*none*: the composites and `documents_processing_status` dropped.",
        "",
        "| query | composite (shipped) | single-column | none | none ÷ composite |",
        "|---|---|---|---|---|",
    ]
    for q in QUERIES:
        c, s, n = med("composite", q.key), med("single", q.key), med("none", q.key)
        lines.append(f"| {q.title} | {ms(c)} | {ms(s)} | {ms(n)} | **{n / c:,.0f}×** |")
    lines += [
        "",
        "| query | index set | access path | buffers (top node) | rows removed by filter | "
        "execution min / median / max | round trip from the client, median |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in QUERIES:
        for v in VARIANTS:
            m = results[v.key][q.key]
            lines.append(
                f"| {q.key} | {v.key} | {m.access} | {m.buffers} | {m.removed:,} | "
                f"{ms(min(m.execution_ms))} / {ms(statistics.median(m.execution_ms))} / {ms(max(m.execution_ms))} | "
                f"{ms(statistics.median(m.round_trip_ms))} |"
            )
    worst = min(med("none", q.key) / med("composite", q.key) for q in QUERIES[:2])
    lines += [
        "",
        f"SC-005 (at least 10× faster with the indexes): the smaller of the two required ratios is "
        f"{worst:,.0f}×.",
    ]
    if parallel_safe != "s":
        lines += [
            "",
            "`auth.uid()` is not declared PARALLEL SAFE, so no query under these policies gets a "
            "parallel plan: without indexes the sequential scan runs in one process.",
        ]
    lines += ["", "### Plans (one further EXPLAIN (ANALYZE, BUFFERS) run each, trimmed)", ""]
    for q in QUERIES:
        for v in VARIANTS:
            lines += [f"**{q.title} — {v.title}**", "", "```text", results[v.key][q.key].plan_text, "```", ""]
    lines.append("SQL: " + "; ".join(f"`{q.sql}`" for q in QUERIES))
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="EXPLAIN ANALYZE the documents listings with and without indexes.")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000, help="documents per INSERT (default 100,000)")
    parser.add_argument("--repeat", type=int, default=9, help="measured runs per query and index set (default 9)")
    add_common_options(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    emit(asyncio.run(run(arguments)), arguments.output)
