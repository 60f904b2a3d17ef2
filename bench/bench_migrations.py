#!/usr/bin/env python
"""Benchmark: `piccolo migrations forwards all` on an empty database, and
`piccolo migrations backwards centrid all --auto_agree`.

Each run gets a fresh, empty database. The real CLI runs as a subprocess
(`python -m piccolo.main ...`, DATABASE_URL pointing at that database), and
we time the whole process. PostgreSQL's own share comes from
pg_stat_database for that database: `active_time` (executing statements),
`idle_in_transaction_time` (waiting on the client inside a transaction),
`sessions` (connections opened) and `xact_commit`. A second series runs
Piccolo's `run_forwards` / `run_backwards` in this process, which leaves out
interpreter start-up and imports.

The server, machine facts and output are common.py's (DATABASE_URL if set,
else an embedded PostgreSQL in a temporary directory or --data-dir).

Progress goes to stderr; the Markdown section for docs/BENCHMARKS.md goes
to stdout (and to --output if given).

    .venv/bin/python bench/bench_migrations.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from common import (
    Server,
    add_common_options,
    bench_server,
    command_line,
    create_database,
    drop_database,
    emit,
    log,
    new_name,
    now_utc,
    run_cli,
)
from centrid.db.engine import with_database  # after common, which puts the repository on sys.path

CENTRID_TABLES = ("user_profiles", "documents", "document_chunks", "agent_requests", "agent_sessions", "usage_events")


# --------------------------------------------------------------------------
# pg_stat_database


STAT_COLUMNS = ("active_time", "idle_in_transaction_time", "session_time", "sessions", "xact_commit")


async def db_stats(admin: asyncpg.Connection, name: str) -> dict[str, float]:
    """Cumulative pg_stat_database counters for `name`, once every backend
    connected to it has gone (a backend flushes its counters as it exits)."""
    for _ in range(500):
        busy = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name)
        if busy == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    row = await admin.fetchrow(
        f"SELECT {', '.join(STAT_COLUMNS)} FROM pg_stat_database WHERE datname = $1", name
    )
    assert row is not None
    return {k: float(row[k] or 0) for k in STAT_COLUMNS}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


async def centrid_tables_present(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1::text[])",
            list(CENTRID_TABLES),
        )
        return n
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# The measurements


@dataclass
class Series:
    label: str
    unit: str
    values: list[float]

    def row(self) -> str:
        def fmt(v: float) -> str:
            return f"{v:.3f}" if self.unit == "s" else f"{v:.0f}"

        return (
            f"| {self.label} | {self.unit} | {fmt(min(self.values))} | "
            f"{fmt(statistics.median(self.values))} | {fmt(max(self.values))} |"
        )


async def cli_runs(admin: asyncpg.Connection, server: Server, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    for i in range(1, runs + 1):
        name = new_name("cli")
        await create_database(admin, name)
        dsn = with_database(server.admin_dsn, name)
        try:
            before = await db_stats(admin, name)
            wall, first = run_cli(["migrations", "forwards", "all"], dsn)
            fwd = delta(await db_stats(admin, name), before)
            add("fwd_wall", wall)
            add("fwd_migrations", float(first.stdout.count("[forwards]")))
            for k, v in fwd.items():
                add(f"fwd_{k}", v)
            if await centrid_tables_present(dsn) != len(CENTRID_TABLES):
                raise RuntimeError("forwards did not create the six tables")

            noop_wall, noop = run_cli(["migrations", "forwards", "all"], dsn)
            if "Running" in noop.stdout:
                raise RuntimeError(f"second forwards was not a no-op:\n{noop.stdout}")
            add("noop_wall", noop_wall)

            before = await db_stats(admin, name)
            bwall, back = run_cli(["migrations", "backwards", "centrid", "all", "--auto_agree"], dsn)
            add("bwd_migrations", float(back.stdout.count("[backwards]")))
            bwd = delta(await db_stats(admin, name), before)
            add("bwd_wall", bwall)
            for k, v in bwd.items():
                add(f"bwd_{k}", v)
            if await centrid_tables_present(dsn) != 0:
                raise RuntimeError("backwards left centrid tables behind")
            log(
                f"  CLI run {i}/{runs}: forwards {wall:.3f} s (PostgreSQL active {fwd['active_time']:.0f} ms, "
                f"{fwd['sessions']:.0f} connections), no-op forwards {noop_wall:.3f} s, "
                f"backwards {bwall:.3f} s (active {bwd['active_time']:.0f} ms)"
            )
        finally:
            await drop_database(admin, name)
    return out


async def in_process_runs(admin: asyncpg.Connection, server: Server, runs: int, pooled: bool) -> dict[str, list[float]]:
    """Piccolo's forwards/backwards called in this process (imports already
    done; the first, warm-up run is not counted)."""
    from piccolo.apps.migrations.commands.backwards import run_backwards
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from centrid.config import settings
    from centrid.db.engine import retarget

    out: dict[str, list[float]] = {}
    for i in range(0, runs + 1):
        name = new_name("inproc")
        await create_database(admin, name)
        dsn = with_database(server.admin_dsn, name)
        # piccolo_conf builds its engine from DATABASE_URL at import: point it
        # at the benchmark database first, never at .centrid/.
        os.environ["DATABASE_URL"] = dsn
        settings.cache_clear()
        import piccolo_conf

        engine = piccolo_conf.DB
        if engine.pool is not None:
            await engine.close_connection_pool()
        retarget(engine, dsn)
        try:
            if pooled:
                await engine.start_connection_pool(min_size=1, max_size=2)
            before = await db_stats(admin, name) if not pooled else None
            sink = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stdout(sink):
                result = await run_forwards(app_name="all")
            fwd_wall = time.perf_counter() - started
            if not result.success:
                raise RuntimeError(f"in-process forwards failed: {result.message}\n{sink.getvalue()}")
            started = time.perf_counter()
            with contextlib.redirect_stdout(sink):
                result = await run_backwards(app_name="centrid", migration_id="all", auto_agree=True)
            bwd_wall = time.perf_counter() - started
            if not result.success:
                raise RuntimeError(f"in-process backwards failed: {result.message}\n{sink.getvalue()}")
            if pooled:
                await engine.close_connection_pool()
            stats = delta(await db_stats(admin, name), before) if before is not None else None
            if i == 0:
                log(f"  in-process{' (pool)' if pooled else ''} warm-up: forwards {fwd_wall:.3f} s (not counted)")
                continue
            out.setdefault("fwd_wall", []).append(fwd_wall)
            out.setdefault("bwd_wall", []).append(bwd_wall)
            if stats is not None:
                out.setdefault("fb_active_time", []).append(stats["active_time"])
            log(
                f"  in-process{' (pool)' if pooled else ''} run {i}/{runs}: forwards {fwd_wall:.3f} s, "
                f"backwards {bwd_wall:.3f} s"
            )
        finally:
            if engine.pool is not None:
                await engine.close_connection_pool()
            await drop_database(admin, name)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time piccolo migrations forwards/backwards on empty databases.")
    parser.add_argument("--runs", type=int, default=5, help="fresh databases per series (default 5)")
    add_common_options(parser)
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> str:
    async with bench_server(args.data_dir) as bench:
        facts = bench.facts
        log(f"CLI series, {args.runs} fresh databases:")
        cli = await cli_runs(bench.admin, bench.server, args.runs)
        log(f"in-process series, {args.runs} fresh databases:")
        inproc = await in_process_runs(bench.admin, bench.server, args.runs, pooled=False)
        log(f"in-process series with a connection pool, {args.runs} fresh databases:")
        pooled = await in_process_runs(bench.admin, bench.server, args.runs, pooled=True)

    rows = [
        Series("CLI `forwards all`, empty database: wall time of the process", "s", cli["fwd_wall"]),
        Series("  of which PostgreSQL executing statements (`active_time`)", "ms", cli["fwd_active_time"]),
        Series("  PostgreSQL idle in transaction, waiting on Piccolo", "ms", cli["fwd_idle_in_transaction_time"]),
        Series("  connections opened", "count", cli["fwd_sessions"]),
        Series("  transactions committed", "count", cli["fwd_xact_commit"]),
        Series("CLI `forwards all`, already up to date (no-op)", "s", cli["noop_wall"]),
        Series("CLI `backwards centrid all --auto_agree`: wall time", "s", cli["bwd_wall"]),
        Series("  of which PostgreSQL executing statements (`active_time`)", "ms", cli["bwd_active_time"]),
        Series("  connections opened", "count", cli["bwd_sessions"]),
        Series("in-process `run_forwards('all')`, no pool (as the CLI)", "s", inproc["fwd_wall"]),
        Series("in-process `run_backwards('centrid', 'all')`, no pool", "s", inproc["bwd_wall"]),
        Series("  PostgreSQL `active_time`, forwards + backwards", "ms", inproc["fb_active_time"]),
        Series("in-process `run_forwards('all')` on a 2-connection pool", "s", pooled["fwd_wall"]),
        Series("in-process `run_backwards('centrid', 'all')` on the pool", "s", pooled["bwd_wall"]),
    ]
    n_fwd = int(statistics.median(cli["fwd_migrations"]))
    n_bwd = int(statistics.median(cli["bwd_migrations"]))
    fwd_med = statistics.median(cli["fwd_wall"])
    active_med = statistics.median(cli["fwd_active_time"]) / 1000
    inproc_med = statistics.median(inproc["fwd_wall"])
    lines = [
        "## Migrations: `piccolo migrations forwards all` on an empty database",
        "",
        f"- Date: {now_utc()}",
        *[f"- {fact}" for fact in facts],
        f"- Command: `{command_line()}`",
        f"- Method: {args.runs} fresh, empty databases per series. The CLI series runs the real "
        "`python -m piccolo.main migrations forwards all` as a subprocess with `DATABASE_URL` "
        f"pointing at the new database ({n_fwd} migrations: Piccolo's user and session apps, then "
        "centrid's), then `forwards all` again (nothing to do), then "
        f"`migrations backwards centrid all --auto_agree` ({n_bwd} migrations). PostgreSQL's share is read from "
        "`pg_stat_database` for that database after the CLI's backends exit. The in-process "
        "series calls Piccolo's `run_forwards` / `run_backwards` after a warm-up run, so "
        "interpreter start-up and imports are not in it.",
        "",
        "| measurement | unit | min | median | max |",
        "|---|---|---|---|---|",
        *[s.row() for s in rows],
        "",
        f"Of the median {fwd_med:.2f} s a deploy waits for `forwards all`, PostgreSQL spends "
        f"{active_med:.2f} s executing statements; the in-process run takes {inproc_med:.2f} s, so "
        f"about {fwd_med - inproc_med:.2f} s is interpreter start-up and imports, and the rest is "
        "Piccolo between statements and a new connection per query (Piccolo's CLI has no pool).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    arguments = parse_args()
    emit(asyncio.run(main(arguments)), arguments.output)
