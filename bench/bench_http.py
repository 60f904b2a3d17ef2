#!/usr/bin/env python
"""Benchmark: throughput and latency of the HTTP service, each request in its
own pooled connection and transaction with the caller's role and claims
set LOCAL and row level security deciding what the caller sees.

A fresh database on the benchmark server is migrated with the real CLI and
seeded as the table owner (auth users, whose trigger creates the profiles,
then documents from generate_series). The real service then starts as its
own process, `python server.py` from the repository root, with DATABASE_URL
pointing at that database, a free port on 127.0.0.1, CENTRID_JWT_SECRET,
a temporary CENTRID_DATA_DIR and CENTRID_POOL_MAX_SIZE from --pool-max-size.
Tokens are minted with centrid.request.tokens.mint_token, as Supabase would
issue them. An httpx.AsyncClient in this process then sends, at each
concurrency level, a bounded number of requests per scenario:

- health:  GET /health (no request scope or transaction; one pooled
           connection runs SELECT 1), the baseline;
- list:    GET /api/documents?limit=20 (the caller's newest 20, RLS only);
- get:     GET /api/documents/{id}, one of the caller's documents;
- create:  POST /api/documents (INSERT ... RETURNING under RLS WITH CHECK).

Every response is checked: the expected status, and for list / get /
create that each row is the caller's. The client runs on the same machine
as the server and PostgreSQL, so the figures are a lower bound.

The server, machine facts and output are common.py's (DATABASE_URL if set,
else an embedded PostgreSQL in a temporary directory or --data-dir). Only
127.0.0.1 is ever sent a request.

Progress goes to stderr; the Markdown section for docs/BENCHMARKS.md goes
to stdout (and to --output if given).

    .venv/bin/python bench/bench_http.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from common import (
    REPO,
    add_common_options,
    bench_server,
    command_line,
    create_auth_users,
    emit,
    loadavg,
    log,
    migrate,
    ms,
    now_utc,
    percentile,
    scratch_database,
)
from centrid.db.engine import with_user  # after common, which puts the repository on sys.path
from centrid.request.tokens import mint_token

HOST = "127.0.0.1"  # the only address this script sends requests to

SEED_DOCUMENTS_SQL = """
INSERT INTO documents (user_id, filename, file_type, file_size, processing_status,
                       content_text, storage_path, created_at, updated_at)
SELECT u.id,
       'document-' || g || '.pdf',
       'application/pdf',
       1000 + g,
       (ARRAY['completed', 'pending', 'processing', 'failed'])[1 + g % 4],
       'Report ' || g || ' on quarterly revenue, churn and the onboarding funnel',
       'documents/' || u.id || '/' || g,
       now() - g * interval '1 hour',
       now() - g * interval '1 hour'
FROM auth.users AS u CROSS JOIN generate_series(1, $1::int) AS g
"""


# --------------------------------------------------------------------------
# The service process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/<pid>/status (VmRSS, VmHWM), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot (/proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


async def backend_pids(admin: asyncpg.Connection, database: str) -> list[int]:
    """The PostgreSQL backends serving the service's pool."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'centrid'", database
    )
    return [int(r["pid"]) for r in rows]


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    secret: str
    log_path: Path
    data_dir: Path
    started_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_lines(self, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The service's JSON log lines from byte offset `start`, and the end offset."""
        data = self.log_path.read_bytes()
        out = []
        for line in data[start:].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"level": "raw", "message": line.decode(errors="replace")})
        return out, len(data)


async def start_service(dsn: str, request_login: str, pool_max_size: int, timeout: float = 60.0) -> Service:
    data_dir = Path(tempfile.mkdtemp(prefix="centrid-bench-http-"))
    port = free_port()
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "HOST": HOST,
        "PORT": str(port),
        "CENTRID_JWT_SECRET": secret,
        "CENTRID_DATA_DIR": str(data_dir),
        "CENTRID_POOL_MAX_SIZE": str(pool_max_size),
        # The request pool's login: as the embedded default and a production
        # deployment, a NOINHERIT role that owns nothing; "owner" keeps DATABASE_URL's.
        "CENTRID_REQUEST_DATABASE_URL": dsn if request_login == "owner" else with_user(dsn, request_login),
    }
    log_path = data_dir / "server.log"
    started = time.perf_counter()
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "server.py"], cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    service = Service(process, port, secret, log_path, data_dir)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=service.base_url, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server.py exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_service(service)
                raise RuntimeError(f"server.py did not answer /health within {timeout:.0f} s")
            await asyncio.sleep(0.1)
    service.started_seconds = time.perf_counter() - started
    log(f"server.py pid {process.pid} on {service.base_url}, healthy after {service.started_seconds:.1f} s")
    return service


def stop_service(service: Service) -> None:
    """SIGTERM to the process this script started; SIGKILL after 40 s."""
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=10)
    shutil.rmtree(service.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class User:
    id: str
    token: str
    documents: tuple[str, ...]  # seeded document ids


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    user: User | None
    body: dict[str, Any] | None = None
    document: str | None = None


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    expected: int
    make: Callable[[int, Sequence[User]], Call]


def _user(i: int, users: Sequence[User]) -> User:
    return users[i % len(users)]


SCENARIOS = (
    Scenario("health", "`GET /health` (no transaction; `SELECT 1` on a pooled connection)", 200,
             lambda i, users: Call("GET", "/health", None)),
    Scenario("list", "`GET /api/documents?limit=20` (RLS list)", 200,
             lambda i, users: Call("GET", "/api/documents?limit=20", _user(i, users))),
    Scenario("get", "`GET /api/documents/{id}`", 200,
             lambda i, users: Call(
                 "GET", f"/api/documents/{_doc(i, users)}", _user(i, users), document=_doc(i, users))),
    Scenario("create", "`POST /api/documents`", 201,
             lambda i, users: Call("POST", "/api/documents", _user(i, users), body={
                 "filename": f"upload-{i}.txt", "file_type": "text/plain", "file_size": 100 + i,
                 "content_text": f"benchmark upload {i}: cats, dogs and quarterly numbers"})),
)


def _doc(i: int, users: Sequence[User]) -> str:
    docs = _user(i, users).documents
    return docs[(i // len(users)) % len(docs)]


def check(call: Call, response: httpx.Response, expected: int, list_size: int) -> tuple[str | None, int]:
    """(None, rows checked) if the response is right; else (what was wrong, 0)."""
    if response.status_code != expected:
        return f"status {response.status_code}", 0
    body = response.json()
    if call.user is None:
        return (None, 0) if body.get("status") == "ok" else ("health not ok", 0)
    rows = body["items"] if "items" in body else [body]
    if any(row.get("user_id") != call.user.id for row in rows):
        return "foreign row", 0
    if "items" in body and len(rows) != list_size:
        return f"list of {len(rows)} rows", 0
    if call.document is not None and body.get("id") != call.document:
        return "wrong document", 0
    return None, len(rows)


# --------------------------------------------------------------------------
# Driving


@dataclass
class Result:
    scenario: str
    concurrency: int
    requests: int = 0
    wall: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    rows_checked: int = 0
    truncated: bool = False
    server_ms: list[float] = field(default_factory=list)
    server_statuses: Counter[int] = field(default_factory=Counter)
    server_other_lines: list[str] = field(default_factory=list)  # log lines that are not access lines
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    postgres_cpu: float = 0.0  # the pool's backends
    machine_busy: float = 0.0  # CPU seconds, all cores
    machine_total: float = 0.0
    busy_max: int = 0
    busy_mean: float = 0.0
    connections_max: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


async def sample_connections(
    admin: asyncpg.Connection, database: str, stop: asyncio.Event, into: list[tuple[int, int]]
) -> None:
    """The service's connections to the benchmark database every 50 ms:
    (held by a request, i.e. not idle; open)."""
    while not stop.is_set():
        row = await admin.fetchrow(
            "SELECT count(*) FILTER (WHERE state <> 'idle') AS busy, count(*) AS open "
            "FROM pg_stat_activity WHERE datname = $1 AND application_name = 'centrid'",
            database,
        )
        assert row is not None
        into.append((int(row["busy"]), int(row["open"])))
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.05)
        except asyncio.TimeoutError:
            pass


async def drive(
    client: httpx.AsyncClient,
    scenario: Scenario,
    users: Sequence[User],
    concurrency: int,
    total: int,
    max_seconds: float,
    list_size: int,
    offset: int,
) -> Result:
    """`total` requests (fewer if `max_seconds` runs out) from `concurrency`
    workers, each sending its next request as soon as the last one answered."""
    result = Result(scenario.key, concurrency)
    issued = 0
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        nonlocal issued
        while issued < total:
            if time.monotonic() > deadline:
                result.truncated = True
                return
            i = offset + issued
            issued += 1
            call = scenario.make(i, users)
            headers = {"authorization": f"Bearer {call.user.token}"} if call.user else None
            t = time.perf_counter()
            try:
                response = await client.request(call.method, call.url, json=call.body, headers=headers)
                result.latencies_ms.append((time.perf_counter() - t) * 1000)
                problem, rows = check(call, response, scenario.expected, list_size)
                result.rows_checked += rows
            except httpx.HTTPError as exc:
                result.latencies_ms.append((time.perf_counter() - t) * 1000)
                problem = type(exc).__name__
            if problem is not None:
                result.errors[problem] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall = time.perf_counter() - started
    result.requests = len(result.latencies_ms)
    return result


async def run_scenario(
    admin: asyncpg.Connection,
    database: str,
    service: Service,
    client: httpx.AsyncClient,
    scenario: Scenario,
    users: Sequence[User],
    concurrency: int,
    args: argparse.Namespace,
    offset: int,
) -> Result:
    await asyncio.sleep(0.2)  # let the previous requests' access-log lines land first
    _, log_start = service.log_lines()
    samples: list[tuple[int, int]] = []
    stop = asyncio.Event()
    backends = {pid: proc_cpu_seconds(pid) for pid in await backend_pids(admin, database)}
    sampler = asyncio.create_task(sample_connections(admin, database, stop, samples))  # admin is its own now
    busy, total = machine_cpu_seconds()
    cpu_server = proc_cpu_seconds(service.process.pid)
    cpu_client = time.process_time()
    try:
        result = await drive(client, scenario, users, concurrency, args.requests, args.max_seconds, 20, offset)
    finally:
        stop.set()
        await sampler
    result.server_cpu = proc_cpu_seconds(service.process.pid) - cpu_server
    result.client_cpu = time.process_time() - cpu_client
    busy_end, total_end = machine_cpu_seconds()
    result.machine_busy, result.machine_total = busy_end - busy, total_end - total
    # Backends opened during the scenario count from zero; closed ones are lost (rare: pool connections live on).
    result.postgres_cpu = sum(
        proc_cpu_seconds(pid) - backends.get(pid, 0.0) for pid in await backend_pids(admin, database)
    )
    if samples:
        result.busy_max = max(b for b, _ in samples)
        result.busy_mean = statistics.fmean(b for b, _ in samples)
        result.connections_max = max(o for _, o in samples)
    await asyncio.sleep(0.2)  # the access-log line is written just after the response
    lines, _ = service.log_lines(log_start)
    for line in lines:
        if line.get("event") == "request":
            result.server_ms.append(float(line["duration_ms"]))
            result.server_statuses[int(line["status"])] += 1
        elif line.get("level") in ("error", "critical"):
            result.errors["server log: " + str(line.get("message", line))[:80]] += 1
        else:
            result.server_other_lines.append(json.dumps(line)[:200])
    log(
        f"  c={concurrency:<3} {scenario.key:7} {result.requests:5} requests {result.wall:6.2f} s "
        f"{result.rps:7.0f} req/s  p50 {percentile(result.latencies_ms, 50):7.2f} ms  "
        f"p99 {percentile(result.latencies_ms, 99):7.2f} ms  errors {sum(result.errors.values())}  "
        f"busy connections max {result.busy_max}/{args.pool_max_size}"
    )
    return result


async def isolation_probe(client: httpx.AsyncClient, users: Sequence[User]) -> Counter[int]:
    """Each user asks for another user's document: RLS must answer 404."""
    statuses: Counter[int] = Counter()
    for n, user in enumerate(users):
        other = users[(n + 1) % len(users)]
        response = await client.get(
            f"/api/documents/{other.documents[0]}", headers={"authorization": f"Bearer {user.token}"}
        )
        statuses[response.status_code] += 1
    return statuses


# --------------------------------------------------------------------------
# The run


async def seed(dsn: str, users: int, per_user: int) -> tuple[list[tuple[str, tuple[str, ...]]], float]:
    started = time.perf_counter()
    owner = await asyncpg.connect(dsn)
    try:
        await create_auth_users(owner, users)
        await owner.execute(SEED_DOCUMENTS_SQL, per_user)
        await owner.execute("VACUUM ANALYZE documents")
        rows = await owner.fetch(
            "SELECT user_id::text AS user_id, array_agg(id::text ORDER BY created_at DESC) AS ids "
            "FROM documents GROUP BY user_id ORDER BY user_id"
        )
    finally:
        await owner.close()
    return [(r["user_id"], tuple(r["ids"])) for r in rows], time.perf_counter() - started


async def run(args: argparse.Namespace) -> str:
    levels = [int(c) for c in args.concurrency.split(",")]
    results: list[Result] = []
    async with bench_server(args.data_dir) as bench:
        facts = bench.facts
        durability = ", ".join([
            f"{name}={await bench.admin.fetchval(f'SHOW {name}')}"
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "commit_delay")
        ])
        async with scratch_database(bench.admin, bench.server, "http") as dsn:
            database = urlsplit(dsn).path.lstrip("/")
            migrate_seconds = migrate(dsn)
            log(f"  migrated with `piccolo migrations forwards all` in {migrate_seconds:.1f} s")
            seeded, seed_seconds = await seed(dsn, args.users, args.documents)
            log(f"  seeded {args.users} users x {args.documents} documents in {seed_seconds:.1f} s")
            service = await start_service(dsn, args.request_login, args.pool_max_size)
            try:
                rss_start = proc_status(service.process.pid, "VmRSS")
                startup_lines, _ = service.log_lines()
                startup_warnings = [
                    str(line.get("message", line)) for line in startup_lines
                    if line.get("level") in ("warning", "error", "critical", "raw")
                ]
                for warning in startup_warnings:
                    log(f"  service start-up: {warning}")
                pool_logins = sorted({
                    str(r["usename"]) for r in await bench.admin.fetch(
                        "SELECT usename FROM pg_stat_activity WHERE datname = $1 AND application_name = 'centrid'",
                        database,
                    )
                })
                log(f"  request pool logs in as {', '.join(pool_logins)}")
                users = [
                    User(uid, mint_token(uid, "authenticated", service.secret, ttl_seconds=3600), docs)
                    for uid, docs in seeded
                ]
                limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
                async with httpx.AsyncClient(base_url=service.base_url, limits=limits, timeout=30.0) as client:
                    probe = await isolation_probe(client, users)
                    log(f"  isolation probe (another user's document): {dict(probe)}")
                    # Warm-up, not counted: imports, statement caches, pool connections.
                    for scenario in SCENARIOS:
                        await drive(client, scenario, users, max(levels), args.warmup, args.max_seconds, 20, 0)
                    offset = args.warmup
                    for concurrency in levels:
                        for scenario in SCENARIOS:
                            results.append(await run_scenario(
                                bench.admin, database, service, client, scenario, users, concurrency, args, offset
                            ))
                            offset += args.requests
                rss_end = proc_status(service.process.pid, "VmRSS")
                load_end = loadavg()
                rss_peak = proc_status(service.process.pid, "VmHWM")
            finally:
                stop_service(service)
                log(f"stopped server.py (exit {service.process.returncode})")
            final_documents = await _count_documents(dsn)

    errors = sum(sum(r.errors.values()) for r in results)
    rows_checked = sum(r.rows_checked for r in results)
    by = {(r.scenario, r.concurrency): r for r in results}
    scenario_titles = {s.key: s.title for s in SCENARIOS}
    lines = [
        "## HTTP service",
        "",
        "Throughput and latency of `python server.py`, each request in its own pooled connection "
        "and transaction, as the caller's role, with row level security deciding what it sees.",
        "",
        f"- Date: {now_utc()}",
        *[f"- {fact}" for fact in facts],
        f"- Command: `{command_line()}`",
        f"- Service: `python server.py` (uvicorn, one process, "
        f"`CENTRID_POOL_MAX_SIZE={args.pool_max_size}` from `--pool-max-size`, other settings default: pool min 1, "
        "acquire timeout 5 s, one JSON access-log line per request to stderr, here a file), "
        f"`DATABASE_URL` a fresh database migrated with the CLI, healthy {service.started_seconds:.1f} s "
        "after launch (including its own no-op `forwards all`).",
        f"- Request pool login (from `pg_stat_activity`): {', '.join(f'`{x}`' for x in pool_logins)} "
        f"(`CENTRID_REQUEST_DATABASE_URL`, `--request-login {args.request_login}`). Service start-up "
        "warnings: " + ("; ".join(w.rstrip(".") for w in startup_warnings) if startup_warnings else "none") + ".",
        f"- Commits: {durability} (every write request waits for its WAL flush).",
        f"- Data: {args.users} users × {args.documents} documents = {args.users * args.documents:,} "
        f"documents, seeded as the table owner in {seed_seconds:.1f} s; the create scenarios added "
        f"{final_documents - args.users * args.documents:,} more (warm-up included).",
        f"- Client: one `httpx.AsyncClient` ({httpx.__version__}) in the benchmark process, HTTP/1.1 "
        "keep-alive, on the same 2-core machine as the service and PostgreSQL, so the figures are "
        "a lower bound. Tokens minted with `centrid.request.tokens.mint_token` (role "
        "`authenticated`); request *i* goes to user *i* mod "
        f"{args.users}. Per concurrency level *c*, *c* workers each send their next request as soon "
        f"as the last one answered, {args.requests:,} requests per scenario (at most "
        f"{args.max_seconds:.0f} s); {args.warmup} requests per scenario at the highest level first "
        "as a warm-up, not counted.",
        "- Checked on every response: the status (200, or 201 for create); for list, get and "
        "create that every row's `user_id` is the caller's; list pages hold exactly 20 rows; get "
        "returns the document asked for.",
        "",
        "| scenario | concurrency | requests | errors | requests/s | p50 | p95 | p99 | max | "
        "server-side p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        for concurrency in levels:
            r = by[(scenario.key, concurrency)]
            lat = r.latencies_ms
            lines.append(
                f"| {scenario.key} | {concurrency} | {r.requests:,}{' (time limit)' if r.truncated else ''} | "
                f"{sum(r.errors.values())} | **{r.rps:,.0f}** | {ms(percentile(lat, 50))} | "
                f"{ms(percentile(lat, 95))} | {ms(percentile(lat, 99))} | {ms(max(lat))} | "
                f"{ms(percentile(r.server_ms, 50))} / {ms(percentile(r.server_ms, 99))} |"
            )
    cores = os.cpu_count() or 1
    lines += [
        "",
        "Where the CPU went, per scenario (CPU time per request; the machine's cores busy over the "
        "scenario, and how much of that was none of the three, i.e. other work on the machine, "
        "PostgreSQL's background processes and the kernel):",
        "",
        "| scenario | concurrency | service CPU / request | PostgreSQL backends CPU / request | "
        f"client CPU / request | machine busy (of {cores} cores) | of which other work | "
        "DB connections held, max (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        for concurrency in levels:
            r = by[(scenario.key, concurrency)]
            per = 1000 / r.requests
            other = r.machine_busy - r.server_cpu - r.client_cpu - r.postgres_cpu
            lines.append(
                f"| {scenario.key} | {concurrency} | {ms(r.server_cpu * per)} | {ms(r.postgres_cpu * per)} | "
                f"{ms(r.client_cpu * per)} | {r.machine_busy / r.wall:.2f} | {max(other, 0.0) / r.wall:.2f} | "
                f"{r.busy_max} ({r.busy_mean:.1f}) |"
            )
    lines += [
        "",
        "Scenarios: " + "; ".join(f"*{k}* = {t}" for k, t in scenario_titles.items()) + ".",
        "",
        f"- Errors: {errors}"
        + (" ("
           + ", ".join(f"{r.scenario}@{r.concurrency}: {dict(r.errors)}" for r in results if r.errors)
           + ")" if errors else "")
        + f". Rows checked against the caller: {rows_checked:,}, none another user's. "
        f"Server-side statuses: {dict(sum((r.server_statuses for r in results), Counter()))}; "
        f"other service log lines during the measured scenarios: "
        f"{sum(len(r.server_other_lines) for r in results)}.",
        f"- Isolation probe before the run: each of the {args.users} users asked for another "
        f"user's document by id: {', '.join(f'{n} × {s}' for s, n in sorted(probe.items()))}.",
        f"- Load average at the end of the run: {load_end} (at the start: in the facts above; other "
        "work on the machine competes for the same 2 cores).",
        f"- Service RSS (`VmRSS` of the `server.py` process): {rss_start / 1024:.0f} MiB once healthy, "
        f"{rss_end / 1024:.0f} MiB after the run; peak (`VmHWM`) {rss_peak / 1024:.0f} MiB.",
        "- *server-side* is the `duration_ms` of the service's own access-log line (from reading "
        "the body to the response sent, so it includes waiting for a pool connection, BEGIN, "
        "`set_config`, the query and COMMIT); the rest of the client's latency is HTTP, the event "
        "loop's queue and the client itself. *CPU per request* is the process's user + system "
        "time over the scenario divided by its requests. *DB connections held* is sampled every "
        "50 ms from `pg_stat_activity` (the service's connections not `idle`, i.e. inside a "
        "request's transaction or running a statement).",
        "",
    ]
    return "\n".join(lines)


async def _count_documents(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM documents")
        return n
    finally:
        await conn.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Throughput and latency of the HTTP service (python server.py).")
    parser.add_argument("--users", type=int, default=50, help="users to seed (default 50)")
    parser.add_argument("--documents", type=int, default=200, help="documents per user (default 200)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario and level (default 2000)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="stop a scenario after this long even if requests remain (default 120)")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted requests per scenario first (default 200)")
    parser.add_argument("--pool-max-size", type=int, default=10, help="CENTRID_POOL_MAX_SIZE (default 10)")
    parser.add_argument("--request-login", default="centrid_authenticator",
                        help="the request pool's login role, or 'owner' for DATABASE_URL's own "
                        "(default centrid_authenticator, created by the migrations)")
    add_common_options(parser)
    args = parser.parse_args(argv)
    if args.documents < 20:
        parser.error("--documents must be at least 20 (a list page is 20 rows)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    emit(asyncio.run(run(arguments)), arguments.output)
