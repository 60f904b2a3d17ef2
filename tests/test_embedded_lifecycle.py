"""The embedded PostgreSQL's lifecycle, with real processes sharing one data directory.

Each "user" below is a separate Python process that joins the embedded
server the way piccolo_conf does (centrid.db.embedded.embedded_dsn) and then
waits to be told to exit, or is killed. The module's tests share one data
directory (one initdb) and each leaves the server stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

from centrid.db.embedded import VersionMismatch, binaries_version, embedded_dsn, postgres_processes, release
from tests.cluster import Cluster as SuiteCluster
from tests.process_support import embedded_dir_fixtures
from tests.support import REPO

USER = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from centrid.db.embedded import embedded_dsn
print(embedded_dsn(Path(sys.argv[1])), flush=True)
sys.stdin.readline()
"""


class User:
    """A process using the embedded server until told to exit."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", USER, str(data_dir)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def dsn(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            raise AssertionError(f"user process failed: {self.stderr()}")
        return line

    def exit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.wait(timeout=60)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


# One data directory per module; each test must leave nothing running.
shared_dir, data_dir = embedded_dir_fixtures("embedded")


def registered_pids(data_dir: Path) -> list[int]:
    raw = json.loads((data_dir / "embedded-users.json").read_text())
    return [u["pid"] for u in raw["users"]]


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_users_share_one_server_and_the_last_one_stops_it(data_dir: Path) -> None:
    users = [User(data_dir) for _ in range(3)]  # racing to start it
    dsns = {u.dsn() for u in users}
    assert len(dsns) == 1
    dsn = dsns.pop()
    assert "host=" in dsn and "localhost" not in dsn  # Unix socket only
    assert await select_one(dsn) == 1
    postmaster = postmaster_pid(data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_setting('listen_addresses')") == ""
        assert await conn.fetchval("SHOW server_version") == binaries_version()
        vector = await conn.fetchval("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        assert tuple(int(p) for p in vector.split(".")[:2]) >= (0, 8), vector
    finally:
        await conn.close()
    assert sorted(registered_pids(data_dir)) == sorted(u.proc.pid for u in users)

    assert users[0].exit() == 0
    assert users[1].exit() == 0
    # Two left; the third still uses the same server.
    assert postmaster_pid(data_dir) == postmaster
    assert await select_one(dsn) == 1
    assert users[2].exit() == 0
    assert postgres_processes(data_dir) == []
    assert registered_pids(data_dir) == []

    logs = [u.stderr() for u in users]
    assert sum("started" in text for text in logs) == 1, logs
    assert sum("joined" in text for text in logs) == 2, logs
    assert f"embedded PostgreSQL {binaries_version()}" in "".join(logs)
    assert "stopped" in logs[2] and "stopped" not in logs[0] + logs[1]


async def test_a_user_killed_outright_is_dropped_and_its_server_adopted(data_dir: Path) -> None:
    first = User(data_dir)
    dsn = first.dsn()
    postmaster = postmaster_pid(data_dir)
    first.proc.kill()
    first.proc.wait()
    # Nothing ran its exit hook: the server is still up, the dead pid still listed.
    assert postgres_processes(data_dir)
    assert registered_pids(data_dir) == [first.proc.pid]

    second = User(data_dir)
    assert second.dsn() == dsn
    assert postmaster_pid(data_dir) == postmaster  # adopted, not restarted
    assert registered_pids(data_dir) == [second.proc.pid]
    assert second.exit() == 0
    assert "adopted" in second.stderr()
    assert postgres_processes(data_dir) == []


async def test_sigterm_ends_a_user_through_its_exit_hook(data_dir: Path) -> None:
    user = User(data_dir)
    user.dsn()
    user.proc.send_signal(signal.SIGTERM)
    assert user.proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert postgres_processes(data_dir) == []
    assert registered_pids(data_dir) == []


async def test_stale_and_reused_pids_never_keep_it_running(data_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    init = psutil.Process(1)
    stale = [
        {"pid": dead.pid, "started": 0.0, "command": "gone"},
        # pid 1 is alive, but started at another time than recorded: a reused pid.
        {"pid": 1, "started": init.create_time() - 1000, "command": "reused"},
        {"pid": os.getpid(), "started": psutil.Process().create_time() + 5, "command": "reused too"},
    ]
    (data_dir / "embedded-users.json").write_text(json.dumps({"users": stale}))
    user = User(data_dir)
    user.dsn()
    assert registered_pids(data_dir) == [user.proc.pid]
    assert user.exit() == 0
    assert postgres_processes(data_dir) == []


async def test_a_stale_postmaster_pid_file_does_not_block_the_next_start(data_dir: Path) -> None:
    user = User(data_dir)
    dsn = user.dsn()
    # Everything killed outright: the user, then the postmaster itself.
    user.proc.kill()
    user.proc.wait()
    psutil.Process(postmaster_pid(data_dir)).kill()
    psutil.wait_procs(postgres_processes(data_dir), timeout=30)
    # ...and the pid its lock files name now belongs to another live process (this one).
    for lock_file in (data_dir / "pgdata" / "postmaster.pid", data_dir / "pgdata" / ".s.PGSQL.5432.lock"):
        lines = lock_file.read_text().splitlines()
        lock_file.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")

    again = User(data_dir)
    assert again.dsn() == dsn
    assert await select_one(dsn) == 1
    assert postmaster_pid(data_dir) != os.getpid()
    assert again.exit() == 0
    assert postgres_processes(data_dir) == []


def test_an_old_major_version_is_refused_untouched(tmp_path: Path) -> None:
    """A .centrid/ made by the pgserver wheel (PostgreSQL 16) is never started with 18."""
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")
    (pgdata / "base").mkdir()
    before = sorted(p.name for p in pgdata.iterdir())
    with pytest.raises(VersionMismatch) as caught:
        embedded_dsn(tmp_path)
    message = str(caught.value)
    assert "PostgreSQL 16" in message and binaries_version() in message
    assert f"mv {pgdata} {pgdata}-pg16" in message
    assert "dump it with PostgreSQL 16" in message
    assert sorted(p.name for p in pgdata.iterdir()) == before
    assert (pgdata / "PG_VERSION").read_text() == "16\n"
    assert postgres_processes(tmp_path) == []
    assert not (tmp_path / "embedded-users.json").exists()
    release(tmp_path)  # nothing held: a no-op


async def test_the_test_cluster_has_pgvector_0_8(cluster: SuiteCluster, empty_dsn: str) -> None:
    """The retrieval code needs pgvector 0.8+ wherever the suite runs."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute("CREATE EXTENSION vector")
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8), version
        assert await conn.fetchval("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector") == 1.0
    finally:
        await conn.close()


def test_the_server_refuses_an_old_data_directory_in_one_log_line(tmp_path: Path) -> None:
    from tests.process_support import embedded_env

    pgdata = tmp_path / "data" / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    result = subprocess.run([sys.executable, "server.py"], cwd=REPO, env=embedded_env(tmp_path / "data"),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0]["level"] == "error"
    assert "holds a PostgreSQL 16 database" in lines[0]["message"]
    assert postgres_processes(tmp_path / "data") == []


async def test_a_killed_postmaster_is_started_again_for_its_users(data_dir: Path) -> None:
    """What a user does after the database crashed under it (and what any
    newly joining process does): start it again, same DSN, data kept."""
    from centrid.db.embedded import ensure_running

    dsn = embedded_dsn(data_dir)
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE IF NOT EXISTS survivors (n int); INSERT INTO survivors VALUES (1)")
        await conn.close()
        assert ensure_running(data_dir) is False
        psutil.Process(postmaster_pid(data_dir)).kill()
        psutil.wait_procs(postgres_processes(data_dir), timeout=30)
        assert ensure_running(data_dir) is True
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM survivors") >= 1  # crash recovery kept it
        finally:
            await conn.close()
    finally:
        release(data_dir)
    assert postgres_processes(data_dir) == []
