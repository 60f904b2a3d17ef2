#!/usr/bin/env python
"""Benchmark: the service against the Python ceiling and the seed's pattern
(issue 8), driven by wrk, on 10k users / 1M documents / 1M chunks.

One command produces the whole table:

    .venv/bin/python bench/bench_ceiling.py --output /tmp/ceiling.md

It loads the data once (ceiling_data.py; kept in `.centrid-bench/`, or on
DATABASE_URL's server), mints a token for every user, then for each worker
count (1 and 2) starts three programs side by side on 127.0.0.1:

- service: `python server.py` with CENTRID_WORKERS (the real service,
  default settings, pool of 10 per process);
- ceiling: ceiling_app.py under uvicorn with uvloop and httptools, raw
  asyncpg, the same transaction and query, the same pool size;
- seed:    seed_app.py, the same work with a new connection per request.

and interleaves them: for each connection count (64, then 1000) and each
route (GET /api/documents, GET /api/documents/{id}, POST /api/documents,
GET /api/search?q=), wrk runs against service, ceiling and seed one after
the other (`--rounds` repeats the whole sweep). Every wrk run sends a random
user's token per request (random_user.lua) with a 10 s client timeout.
While wrk runs, the program's connections in pg_stat_activity are sampled
every 100 ms (busy = not idle). POSTs create `bench-post-*` documents, deleted
after the run (the data stays at 1M rows). Then, on a fresh 1-worker
service, RSS after 10k and after 100k requests, and (`--profile`) a py-spy
profile of the service under the 64-connection list load.

Progress goes to stderr, the Markdown section to stdout (and --output).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from ceiling_data import VOCABULARY, BenchData, delete_posted, ensure_data, server_for
from common import REPO, command_line, emit, loadavg, log, machine_facts, now_utc
from centrid.db.engine import AUTHENTICATOR_ROLE, with_user
from centrid.request.tokens import mint_token

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
LUA = BENCH / "random_user.lua"
ROUTES = {
    "list": "`GET /api/documents`",
    "get": "`GET /api/documents/{id}`",
    "post": "`POST /api/documents`",
    "search": "`GET /api/search?q=`",
}
PROGRAMS = ("before", "service", "ceiling", "seed")
# "before" (--before-dir) and "service" both log in as application "centrid": their busy
# connections are told apart by which one is under load, their open ones add up.
APP_NAMES = {"before": "centrid", "service": "centrid", "ceiling": "bench-ceiling", "seed": "bench-seed"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def rss_mib(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc/<pid>/stat)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


# --------------------------------------------------------------------------
# The programs


@dataclass
class Program:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The processes answering requests: the workers if there are any."""
        return [p for p in children(self.process.pid) if not _is_helper(p)] or [self.process.pid]


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _is_helper(pid: int) -> bool:
    # multiprocessing's resource tracker / semaphore tracker, not a worker
    return "resource_tracker" in _cmdline(pid) or "semaphore_tracker" in _cmdline(pid)


def start_program(name: str, dsn: str, secret: str, workers: int, scratch: Path, service_loop: str,
                  before_dir: Path | None = None) -> Program:
    port = free_port()
    request_dsn = with_user(dsn, AUTHENTICATOR_ROLE)
    env = {**os.environ, "BENCH_DSN": request_dsn, "BENCH_JWT_SECRET": secret}
    cwd = REPO
    if name in ("service", "before"):
        env.update({
            "DATABASE_URL": dsn,
            "CENTRID_REQUEST_DATABASE_URL": request_dsn,
            "CENTRID_JWT_SECRET": secret,
            "CENTRID_DATA_DIR": str(scratch / "service-data"),
            "CENTRID_WORKERS": str(workers),
            "HOST": HOST,
            "PORT": str(port),
        })
        if name == "before" and service_loop == "server":
            # Another checkout's service started as this one is (`python server.py`, uvloop and
            # httptools): for comparing two versions of the request path.
            assert before_dir is not None
            cwd = before_dir
            args = [sys.executable, str(before_dir / "server.py")]
        elif name == "before":
            # Another checkout's service (e.g. `git archive main`), as it shipped: asyncio and h11.
            assert before_dir is not None
            cwd = before_dir
            args = [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", str(before_dir), "--host", HOST,
                    "--port", str(port), "--workers", str(workers), "--loop", "asyncio", "--http", "h11",
                    "--no-access-log", "--log-level", "warning"]
        elif service_loop == "asyncio":
            # The service as it was before uvicorn[standard]: plain asyncio and h11.
            args = [sys.executable, "-m", "uvicorn", "server:app", "--host", HOST, "--port", str(port),
                    "--workers", str(workers), "--loop", "asyncio", "--http", "h11", "--no-access-log",
                    "--log-level", "warning"]
        else:
            args = [sys.executable, "server.py"]
    else:
        args = [sys.executable, "-m", "uvicorn", f"{name}_app:app", "--app-dir", str(BENCH), "--host", HOST,
                "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]
    log_path = scratch / f"{name}-{workers}.log"
    with log_path.open("wb") as sink:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                                   start_new_session=True)
    return Program(name, process, port, log_path)


async def wait_ready(program: Program, token: str, timeout: float = 90.0) -> None:
    """Until an authenticated list answers 200 (the pool is open, migrations done)."""
    deadline = time.monotonic() + timeout
    request = (f"GET /api/documents?limit=1 HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
               "Connection: close\r\n\r\n").encode()
    while time.monotonic() < deadline:
        if program.process.poll() is not None:
            raise RuntimeError(f"{program.name} exited:\n{program.log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, program.port)
            writer.write(request)
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{program.name} not ready after {timeout:.0f} s:\n{program.log_path.read_text()[-3000:]}")


def stop_program(program: Program) -> None:
    """SIGTERM to the process group this script started; SIGKILL after 40 s."""
    if program.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(program.process.pid, signal.SIGTERM)
        try:
            program.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(program.process.pid, signal.SIGKILL)
            program.process.wait(timeout=10)


# --------------------------------------------------------------------------
# wrk and the connection sampler


@dataclass
class Run:
    program: str
    route: str
    connections: int
    workers: int
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    busy_max: int = 0
    open_max: int = 0
    cpu_ms: float = 0.0  # the program's own CPU per request (all its workers)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


async def wrk(port: int, route: str, connections: int, seconds: float, tokens: Path,
              max_requests: int | None = None) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TOKENS": str(tokens), "BENCH_ROUTE": route}
    if max_requests is not None:
        env["BENCH_MAX_REQUESTS"] = str(max_requests)
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", str(LUA),
        f"http://{HOST}:{port}", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"wrk printed no summary:\n{out.decode()}\n{err.decode()}")


async def sample(admin: asyncpg.Connection, app_name: str, stop: asyncio.Event) -> tuple[int, int]:
    busy_max = open_max = 0
    while not stop.is_set():
        row = await admin.fetchrow(
            "SELECT count(*) FILTER (WHERE state <> 'idle') AS busy, count(*) AS open "
            "FROM pg_stat_activity WHERE application_name = $1", app_name)
        assert row is not None
        busy_max, open_max = max(busy_max, row["busy"]), max(open_max, row["open"])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    return busy_max, open_max


async def drained(admin: asyncpg.Connection, app_name: str, timeout: float = 60.0) -> None:
    """Until the program finished what wrk left queued (no busy connection), so
    the next run neither competes with it nor counts its connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                                    "AND state <> 'idle'", app_name)
        if busy == 0:
            return
        await asyncio.sleep(0.2)


async def measure(admin: asyncpg.Connection, program: Program, route: str, connections: int, seconds: float,
                  workers: int, tokens: Path) -> Run:
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample(admin, APP_NAMES[program.name], stop))
    pids = program.worker_pids()
    cpu_before = cpu_seconds(pids)
    try:
        raw = await wrk(program.port, route, connections, seconds, tokens)
    finally:
        stop.set()
        busy_max, open_max = await sampler
    cpu = cpu_seconds(pids) - cpu_before
    await drained(admin, APP_NAMES[program.name])
    run = Run(program.name, route, connections, workers, requests=raw["requests"], seconds=raw["seconds"],
              p50_ms=raw["p50_ms"], p99_ms=raw["p99_ms"], non2xx=raw["status"],
              socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
              busy_max=busy_max, open_max=open_max, cpu_ms=cpu * 1000 / max(raw["requests"], 1), raw=raw)
    log(f"  {program.name:8} {route:6} c={connections:<4} w={workers}: {run.rps:7.0f} req/s  p50 {run.p50_ms:7.1f} ms"
        f"  p99 {run.p99_ms:7.1f} ms  cpu {run.cpu_ms:.2f} ms/req  errors {run.non2xx}+{run.socket_errors}  db busy<={busy_max} open<={open_max}"
        f"  (load {loadavg()})")
    return run


# --------------------------------------------------------------------------
# Tokens


async def write_tokens(data: BenchData, secret: str, path: Path) -> list[str]:
    """One line per user: token, one of the user's documents, a search term."""
    conn = await asyncpg.connect(data.owner_dsn)
    try:
        rows = await conn.fetch("SELECT DISTINCT ON (user_id) user_id::text, id::text FROM documents "
                                "ORDER BY user_id, created_at")
    finally:
        await conn.close()
    rng = random.Random(8)
    tokens = []
    with path.open("w") as out:
        for row in rows:
            token = mint_token(row["user_id"], "authenticated", secret, ttl_seconds=6 * 3600)
            tokens.append(token)
            out.write(f"{token} {row['id']} term{rng.randrange(VOCABULARY)}\n")
    log(f"tokens for {len(rows):,} users in {path}")
    return tokens


# --------------------------------------------------------------------------
# Phases


@contextlib.asynccontextmanager
async def programs(names: Sequence[str], dsn: str, secret: str, workers: int, scratch: Path, token: str,
                   service_loop: str, before_dir: Path | None = None) -> AsyncIterator[dict[str, Program]]:
    started = {name: start_program(name, dsn, secret, workers, scratch, service_loop, before_dir) for name in names}
    try:
        for program in started.values():
            await wait_ready(program, token)
        yield started
    finally:
        for program in started.values():
            stop_program(program)


async def sweep(args: argparse.Namespace, admin: asyncpg.Connection, data: BenchData, secret: str, scratch: Path,
                tokens_path: Path, token: str, workers: int) -> list[Run]:
    runs: list[Run] = []
    async with programs(args.programs, data.owner_dsn, secret, workers, scratch, token, args.service_loop,
                        args.before_dir) as progs:
        for program in progs.values():  # warm-up: caches, prepared statements, pools at size
            await wrk(program.port, "list", 64, args.warmup, tokens_path)
        for _ in range(args.rounds):
            for connections in args.connections:
                seconds = args.seconds if connections <= 64 else args.seconds_high
                for route in args.routes:
                    for name in args.programs:
                        if name == "seed" and connections > 64 and route not in args.seed_high_routes:
                            continue
                        runs.append(await measure(admin, progs[name], route, connections, seconds, workers,
                                                  tokens_path))
                        if route == "post":
                            await delete_posted(data.owner_dsn)
    return runs


async def memory(args: argparse.Namespace, data: BenchData, secret: str, scratch: Path, tokens_path: Path,
                 token: str) -> tuple[float, int, float, int, float]:
    """RSS of a fresh 1-worker service once ready, after 10k and after 100k list
    requests (wrk in 5 s slices until the count is reached; wrk itself cannot
    stop at a count)."""
    async with programs(["service"], data.owner_dsn, secret, 1, scratch, token, args.service_loop) as progs:
        service = progs["service"]
        pids = service.worker_pids()
        ready = rss_mib(pids)
        served = 0
        marks: list[tuple[int, float]] = []
        for target in (10_000, 100_000):
            while served < target:
                served += int((await wrk(service.port, "list", 64, 5, tokens_path))["requests"])
            marks.append((served, rss_mib(pids)))
    (n10, after_10k), (n100, after_100k) = marks
    log(f"service RSS: ready {ready:.1f} MiB, after {n10:,} {after_10k:.1f} MiB, after {n100:,} {after_100k:.1f} MiB")
    return ready, n10, after_10k, n100, after_100k


async def profile(args: argparse.Namespace, data: BenchData, secret: str, scratch: Path, tokens_path: Path,
                  token: str, name: str = "service") -> str:
    """py-spy record (raw, collapsed stacks) on a 1-worker service under the 64-connection list load.

    --gil: only samples where the service holds the GIL, i.e. runs Python;
    a socket send that waits for a core (the machine is shared) is not
    counted as the service's work."""
    out = scratch / f"profile-{name}.txt"
    async with programs([name], data.owner_dsn, secret, 1, scratch, token, args.service_loop,
                        args.before_dir) as progs:
        program = progs[name]
        await wrk(program.port, "list", 64, args.warmup, tokens_path)
        pid = program.worker_pids()[0]
        spy = await asyncio.create_subprocess_exec(
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
            "--duration", str(int(args.seconds)), "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
            "--output", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await wrk(program.port, "list", 64, args.seconds, tokens_path)
        await spy.wait()
    if args.profile_output:
        shutil.copy(out, args.profile_output.with_name(f"{args.profile_output.stem}-{name}{args.profile_output.suffix}"))
    from profile_summary import summarize

    return summarize(out.read_text())


# --------------------------------------------------------------------------
# Output


def _fmt_rps(value: float) -> str:
    return f"{value:,.0f}"


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| workers | conns | route | program | req/s | ratio to ceiling | CPU ms/req (ratio) | p50 | p99 | non-2xx | socket errors | DB conns busy / open (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling: dict[tuple[int, int, str, int], float] = {}
    ceiling_cpu: dict[tuple[int, int, str, int], float] = {}
    counter: dict[tuple[int, int, str, str], int] = {}
    keyed: list[tuple[int, Run]] = []
    for run in runs:
        key = (run.workers, run.connections, run.route, run.program)
        counter[key] = counter.get(key, 0) + 1
        keyed.append((counter[key], run))
        if run.program == "ceiling":
            ceiling[(run.workers, run.connections, run.route, counter[key])] = run.rps
            ceiling_cpu[(run.workers, run.connections, run.route, counter[key])] = run.cpu_ms
    for n, run in sorted(keyed, key=lambda kr: (kr[1].workers, kr[1].connections, list(ROUTES).index(kr[1].route),
                                                 kr[0], PROGRAMS.index(kr[1].program))):
        base = ceiling.get((run.workers, run.connections, run.route, n))
        ratio = f"{run.rps / base:.2f}" if base else "-"
        base_cpu = ceiling_cpu.get((run.workers, run.connections, run.route, n))
        cpu = f"{run.cpu_ms:.2f}" + (f" ({run.cpu_ms / base_cpu:.2f})" if base_cpu else "")
        lines.append(
            f"| {run.workers} | {run.connections} | {ROUTES[run.route]} | {run.program} | {_fmt_rps(run.rps)} | {ratio} | {cpu} "
            f"| {run.p50_ms:.1f} ms | {run.p99_ms:.1f} ms | {run.non2xx} | {run.socket_errors} "
            f"| {run.busy_max} / {run.open_max} |")
    return lines


async def run(args: argparse.Namespace) -> str:
    server = server_for(args.data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="centrid-bench-ceiling-"))
    try:
        data = await ensure_data(server)
        admin = await asyncpg.connect(server.admin_dsn)
        try:
            facts = await machine_facts(admin, server)
            secret = secrets.token_urlsafe(48)
            tokens_path = scratch / "tokens.txt"
            token = (await write_tokens(data, secret, tokens_path))[0]
            started = now_utc()
            runs: list[Run] = []
            for workers in args.workers:
                runs += await sweep(args, admin, data, secret, scratch, tokens_path, token, workers)
            rss = await memory(args, data, secret, scratch, tokens_path, token) if args.memory else None
            prof = await profile(args, data, secret, scratch, tokens_path, token) if args.profile else None
            prof_before = (await profile(args, data, secret, scratch, tokens_path, token, "before")
                           if args.profile and args.before_dir else None)
        finally:
            await admin.close()
        await delete_posted(data.owner_dsn)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [
        f"### Service vs ceiling vs seed pattern ({started})",
        "",
        f"Command: `{command_line()}`",
        "",
        *[f"- {fact}" for fact in facts],
        f"- Data: {data.users:,} users, {data.documents:,} documents, {data.chunks:,} chunks; a random user's "
        "token per request (wrk -t2, --timeout 10s); load average at the end "
        f"{loadavg()}",
        f"- Durations: {args.seconds:.0f} s at 64 connections, {args.seconds_high:.0f} s at 1000; "
        f"{args.rounds} round(s), programs interleaved per route",
        "",
        *table(runs),
    ]
    if rss is not None:
        ready, n10, after_10k, n100, after_100k = rss
        lines += ["", f"Service RSS (1 worker, list requests at 64 connections): {ready:.1f} MiB ready, "
                      f"{after_10k:.1f} MiB after {n10:,} requests, {after_100k:.1f} MiB after {n100:,} "
                      f"({(after_100k / after_10k - 1) * 100:+.1f}%)."]
    if prof_before is not None:
        lines += ["", "Profile of `before` (py-spy, 1 worker, 64 connections, GET /api/documents):", "", prof_before]
    if prof is not None:
        lines += ["", "Profile of `service` (py-spy, 1 worker, 64 connections, GET /api/documents):", "", prof]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The service against the ceiling and the seed's pattern, with wrk.")
    parser.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory (default .centrid-bench/)")
    parser.add_argument("--output", type=Path, help="also write the Markdown section to this file")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--connections", default="64,1000", help="wrk connection counts (default 64,1000)")
    parser.add_argument("--routes", default=",".join(ROUTES), help="routes (default list,get,post,search)")
    parser.add_argument("--programs", default="service,ceiling,seed",
                        help="programs (default service,ceiling,seed; 'before' needs --before-dir)")
    parser.add_argument("--before-dir", type=Path,
                        help="a checkout of the service before these changes (e.g. `git archive main`), run as "
                             "program 'before' on asyncio + h11, as it shipped")
    parser.add_argument("--seed-high-routes", default="list",
                        help="routes the seed pattern runs at 1000 connections (default list)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per run at 64 connections (default 10)")
    parser.add_argument("--seconds-high", type=float, default=30, help="seconds per run at 1000 (default 30)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per program (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the interleaved sweep (default 1)")
    parser.add_argument("--service-loop", choices=("auto", "asyncio", "server"), default="auto",
                        help="asyncio: run the service on plain asyncio + h11 (the pre-uvloop baseline); "
                             "server: run both 'service' and 'before' as `python server.py` (comparing two "
                             "versions of the request path)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the RSS phase")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of the service under list load")
    parser.add_argument("--profile-output", type=Path, help="keep py-spy's raw collapsed stacks here")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.connections = [int(c) for c in args.connections.split(",")]
    args.routes = [r for r in args.routes.split(",") if r]
    args.programs = [p for p in args.programs.split(",") if p]
    if args.before_dir is not None and "before" not in args.programs:
        args.programs.insert(0, "before")
    args.seed_high_routes = set(args.seed_high_routes.split(","))
    return args


def main() -> None:
    args = parse_args()
    emit(asyncio.run(run(args)), args.output)


if __name__ == "__main__":
    main()
