"""`python server.py` on its own embedded PostgreSQL, stopped the ways it is stopped.

SIGTERM (docker stop, systemd) and SIGINT (Ctrl-C) end in-flight requests,
exit 0, and leave no PostgreSQL running; a kill -9 leaves a server the next
start adopts; a `piccolo` command shares the database with a running server;
and under a stream of writes, what was acknowledged is there and nothing
else is. The module's tests share one data directory (one initdb, one
migration run); each test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from centrid.db.embedded import binaries_version, embedded_dsn, postgres_processes, release
from centrid.request.tokens import mint_token
from tests.process_support import (
    ServerProcess,
    embedded_dir_fixtures,
    embedded_env,
    running_embedded_dsn,
    start_server,
)
from tests.support import REPO, create_user, wait_for


# One data directory per module; each test must leave nothing running.
shared_dir, data_dir = embedded_dir_fixtures("graceful")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Every server a test starts; stopped if the test left one running."""
    started: list[ServerProcess] = []
    yield started
    for srv in started:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                srv.kill()


async def new_user_token(data_dir: Path) -> tuple[str, str]:
    """A user made directly in the database, and a token signed with the
    development secret the server generated in the data directory."""
    conn = await asyncpg.connect(running_embedded_dsn(data_dir))
    try:
        user_id = await create_user(conn)
    finally:
        await conn.close()
    secret = (data_dir / "jwt_secret").read_text().strip()
    return user_id, mint_token(user_id, "authenticated", secret)


def assert_clean_exit(srv: ServerProcess, data_dir: Path, code: int) -> None:
    stderr = srv.stderr()
    assert code == 0, f"exit status {code}:\n{stderr}"
    assert postgres_processes(data_dir) == [], stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_finishes_in_flight_requests_exits_0_and_stops_postgres(
    data_dir: Path, servers: list[ServerProcess], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    secret_existed = (data_dir / "jwt_secret").exists()
    srv = start_server(embedded_env(data_dir), tmp_path)
    servers.append(srv)
    _, token = await new_user_token(data_dir)
    auth = {"Authorization": f"Bearer {token}"}

    # A request held in flight by a lock taken directly in the database.
    dsn = running_embedded_dsn(data_dir)
    blocker = await asyncpg.connect(dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
    filename = f"in-flight-{uuid.uuid4().hex}.txt"
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as client:
        try:
            in_flight = asyncio.ensure_future(client.post(
                "/api/documents", json={"filename": filename, "file_type": "text/plain", "file_size": 1},
                headers=auth))

            async def blocked() -> bool:
                return bool(await blocker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'centrid' "
                    "AND wait_event_type = 'Lock'"))

            await wait_for(blocked, "the in-flight request to block on the lock")
            srv.proc.send_signal(stop_signal)

            async def refused() -> bool:
                return not srv.accepts_connections()

            await wait_for(refused, "the server to stop accepting connections")
            assert srv.proc.poll() is None  # still finishing the request
        finally:
            await tx.rollback()
            await blocker.close()
        response = await asyncio.wait_for(in_flight, timeout=40)
    assert response.status_code == 201, response.text

    assert_clean_exit(srv, data_dir, srv.wait())
    messages = srv.messages()
    assert f"listening on http://127.0.0.1:{srv.port}" in messages
    assert any(m.startswith(f"embedded PostgreSQL {binaries_version()} ") for m in messages), messages
    secret_line = f"JWT secret: development secret {'reused from' if secret_existed else 'generated in'} " \
                  f"{data_dir / 'jwt_secret'}"
    assert secret_line in messages, messages
    assert f"stopped on {stop_signal.name}" in messages
    assert f"embedded PostgreSQL stopped: {data_dir / 'pgdata'}" in messages

    # The acknowledged write is there (the test joins, then leaves, the server).
    conn = await asyncpg.connect(embedded_dsn(data_dir))
    try:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE filename = $1", filename) == 1
    finally:
        await conn.close()
        release(data_dir)


async def test_after_kill_9_the_next_start_adopts_postgres_and_a_clean_stop_ends_it(
    data_dir: Path, servers: list[ServerProcess], tmp_path: Path
) -> None:
    first = start_server(embedded_env(data_dir), tmp_path, "first")
    servers.append(first)
    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    first.kill()
    assert postgres_processes(data_dir), "nothing can stop PostgreSQL for a killed process"

    second = start_server(embedded_env(data_dir), tmp_path, "second")
    servers.append(second)
    assert int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0]) == postmaster
    assert any("adopted" in m for m in second.messages()), second.stderr()
    _, token = await new_user_token(data_dir)
    r = httpx.get(second.base_url + "/api/documents", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    second.proc.send_signal(signal.SIGTERM)
    assert_clean_exit(second, data_dir, second.wait())


async def test_a_piccolo_command_shares_the_database_and_stale_pids_never_keep_it_running(
    data_dir: Path, servers: list[ServerProcess], tmp_path: Path
) -> None:
    env = embedded_env(data_dir)
    srv = start_server(env, tmp_path)
    servers.append(srv)
    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])

    def piccolo(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "piccolo.main", "centrid", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip().splitlines()[-1]

    user_id = piccolo("create_user", f"{uuid.uuid4().hex[:8]}@example.test")
    token = piccolo("token", user_id)
    # The command joined and left; the server's PostgreSQL kept running.
    assert int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0]) == postmaster
    r = httpx.get(srv.base_url + "/api/profile", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["user_id"] == user_id, r.text

    # Entries a crash or a reused pid could leave behind.
    registry = data_dir / "embedded-users.json"
    users = json.loads(registry.read_text())["users"]
    assert [u["pid"] for u in users] == [srv.proc.pid]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    users += [{"pid": dead.pid, "started": 0.0, "command": "killed"},
              {"pid": 1, "started": psutil.Process(1).create_time() - 1000, "command": "reused pid"}]
    registry.write_text(json.dumps({"users": users}))

    srv.proc.send_signal(signal.SIGTERM)
    assert_clean_exit(srv, data_dir, srv.wait())


@dataclass
class Outcome:
    kind: str  # "document" or "chunks"
    marker: str  # the filename, or the batch's content prefix
    status: int | None  # None: no response


CHUNKS_PER_BATCH = 5


async def test_graceful_stop_under_writes_keeps_every_acknowledged_write_and_nothing_else(
    data_dir: Path, servers: list[ServerProcess], tmp_path: Path
) -> None:
    srv = start_server(embedded_env(data_dir), tmp_path)
    servers.append(srv)
    _, token = await new_user_token(data_dir)
    auth = {"Authorization": f"Bearer {token}"}
    outcomes: list[Outcome] = []
    acknowledged = asyncio.Event()

    async def writer(client: httpx.AsyncClient, n: int) -> None:
        r = await client.post("/api/documents", headers=auth,
                              json={"filename": f"chunks-{n}.txt", "file_type": "text/plain", "file_size": 1})
        assert r.status_code == 201, r.text
        doc_id = r.json()["id"]
        next_index = 0
        for i in range(100_000):
            if i % 2 == 0:
                marker = f"doc-{uuid.uuid4().hex}.txt"
                outcome = Outcome("document", marker, None)
                request = client.post("/api/documents", headers=auth,
                                      json={"filename": marker, "file_type": "text/plain", "file_size": 1})
            else:
                marker = f"batch-{uuid.uuid4().hex}"
                outcome = Outcome("chunks", marker, None)
                batch = [{"chunk_index": next_index + k, "content": f"{marker} part {k}"}
                         for k in range(CHUNKS_PER_BATCH)]
                next_index += CHUNKS_PER_BATCH
                request = client.post(f"/api/documents/{doc_id}/chunks", headers=auth, json=batch)
            outcomes.append(outcome)
            try:
                outcome.status = (await request).status_code
            except httpx.TransportError:
                if srv.proc.poll() is not None or not srv.accepts_connections():
                    return  # the server is gone or going: this writer is done
                continue
            if 200 <= outcome.status < 300 and sum(1 for o in outcomes if o.status == 201) >= 40:
                acknowledged.set()

    async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as client:
        writers = [asyncio.ensure_future(writer(client, n)) for n in range(4)]
        await asyncio.wait_for(acknowledged.wait(), timeout=60)
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*writers), timeout=60)
    assert_clean_exit(srv, data_dir, srv.wait())

    conn = await asyncpg.connect(embedded_dsn(data_dir))
    try:
        docs = {r["filename"] for r in await conn.fetch("SELECT filename FROM documents WHERE filename LIKE 'doc-%'")}
        chunk_counts: dict[str, int] = {}
        for row in await conn.fetch("SELECT split_part(content, ' ', 1) AS marker, count(*) AS n "
                                    "FROM document_chunks WHERE content LIKE 'batch-%' GROUP BY 1"):
            chunk_counts[row["marker"]] = row["n"]
    finally:
        await conn.close()
        release(data_dir)

    ok = [o for o in outcomes if o.status is not None and 200 <= o.status < 300]
    assert len(ok) >= 40
    for o in outcomes:
        acked = o in ok
        if o.kind == "document":
            assert (o.marker in docs) == acked, o
        else:
            # Never partial: all of an acknowledged batch, none of any other.
            assert chunk_counts.get(o.marker, 0) == (CHUNKS_PER_BATCH if acked else 0), o
    # Nothing in the database that no request asked for.
    assert docs <= {o.marker for o in outcomes}
    assert set(chunk_counts) <= {o.marker for o in outcomes}


async def test_uvicorn_workers_share_the_database_and_the_last_one_stops_it(
    data_dir: Path, tmp_path: Path
) -> None:
    """`uvicorn server:app --workers 2`: each worker process is a user of its
    own; SIGTERM to the parent stops both workers, and PostgreSQL with the last."""
    from tests.process_support import free_port

    port = free_port()
    log_path = tmp_path / "workers.stderr.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "server:app", "--workers", "2", "--host", "127.0.0.1",
             "--port", str(port), "--timeout-graceful-shutdown", "30"],
            cwd=REPO, env=embedded_env(data_dir), stdout=subprocess.DEVNULL, stderr=err,
            stdin=subprocess.DEVNULL)
    try:
        async def both_registered() -> bool:
            try:
                users = json.loads((data_dir / "embedded-users.json").read_text())["users"]
            except (OSError, ValueError):
                return False
            workers = {p.pid for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())}
            return len(workers) == 2 and {u["pid"] for u in users} == workers

        await wait_for(both_registered, "both workers to join the embedded database", timeout=90)

        async def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(healthy, "the workers to serve", timeout=60)
        _, token = await new_user_token(data_dir)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(10):
                r = await client.get("/api/documents", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
        assert postgres_processes(data_dir) == [], log_path.read_text()
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
