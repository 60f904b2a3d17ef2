"""The real process: `python server.py` over the test database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET, MigratedDB
from tests.process_support import ServerProcess, start_server
from tests.support import bearer, create_user, wait_for


@pytest.fixture
def server(db: MigratedDB, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        **os.environ,
        "DATABASE_URL": db.dsn,
        "CENTRID_JWT_SECRET": TEST_JWT_SECRET,
        "CENTRID_AUTO_MIGRATE": "1",
        "CENTRID_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("CENTRID_LOG_LEVEL", None)
    srv = start_server(env, tmp_path)
    try:
        yield srv
    finally:
        srv.kill()


async def test_server_process_serves_logs_and_stops_cleanly(db: MigratedDB, server: ServerProcess) -> None:
    alice = await create_user(db.owner, name="Alice")
    migrations_before = await db.owner.fetchval("SELECT count(*) FROM migration")
    token_header = bearer(alice)
    token = token_header["Authorization"].removeprefix("Bearer ")
    bad_token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        r = await client.post(
            "/api/documents",
            json={"filename": "proc.txt", "file_type": "text/plain", "file_size": 4, "content_text": "real"},
            headers={**token_header, "X-Request-ID": "proc-create-1"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == "proc-create-1"
        doc = r.json()
        assert doc["user_id"] == alice
        r = await client.get(f"/api/documents/{doc['id']}", headers={**token_header, "X-Request-ID": "proc-read-1"})
        assert r.status_code == 200 and r.json() == doc
        r = await client.get("/api/documents", headers={"Authorization": f"Bearer {bad_token}",
                                                        "X-Request-ID": "proc-bad-1"})
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["code"] == "unauthorized" and error["message"] and "details" in error
        r = await client.post("/api/documents", json={"filename": "x"}, headers={"Authorization": f"Bearer {bad_token}"})
        assert r.status_code == 401

    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 1
    # Auto-migrate found nothing to do on the migrated database.
    assert await db.owner.fetchval("SELECT count(*) FROM migration") == migrations_before

    # SIGTERM with a request in flight (blocked on a lock in the database):
    # the server stops listening, lets the request finish and commit, exits.
    blocker = await asyncpg.connect(db.dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        try:
            in_flight = asyncio.ensure_future(client.post(
                "/api/documents", json={"filename": "late.txt", "file_type": "text/plain", "file_size": 1},
                headers={**token_header, "X-Request-ID": "proc-in-flight"}))

            async def blocked() -> bool:
                return bool(await db.owner.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'centrid' "
                    "AND datname = current_database() AND wait_event_type = 'Lock'"))

            await wait_for(blocked, "the in-flight request to block on the lock", timeout=10.0)
            server.proc.send_signal(signal.SIGTERM)

            async def refused() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                    return False
                except OSError:
                    return True

            await wait_for(refused, "the server to stop accepting connections", timeout=10.0)
        finally:
            await tx.rollback()
            await blocker.close()
        response = await asyncio.wait_for(in_flight, timeout=20)
    assert response.status_code == 201, response.text
    assert await db.owner.fetchval("SELECT count(*) FROM documents WHERE filename = 'late.txt'") == 1

    try:
        code = server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server did not stop within 10 s of SIGTERM:\n{server.stderr()}") from None
    assert await db.owner.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'centrid' AND datname = current_database()"
    ) == 0

    stderr = server.stderr()
    assert token not in stderr and bad_token not in stderr
    assert token.split(".")[2] not in stderr and bad_token.split(".")[2] not in stderr
    assert TEST_JWT_SECRET not in stderr
    assert "Traceback" not in stderr
    lines = server.log_lines()
    messages = " ".join(str(line.get("message", "")) for line in lines)
    assert "schema up to date" in messages, stderr
    assert "[forwards]" not in stderr
    assert "JWT secret: CENTRID_JWT_SECRET" in messages

    access = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    create = access["proc-create-1"]
    assert (create["method"], create["path"], create["status"]) == ("POST", "/api/documents", 201)
    assert create["user_id"] == alice and create["role"] == "authenticated"
    assert isinstance(create["duration_ms"], (int, float)) and create["duration_ms"] >= 0
    read = access["proc-read-1"]
    assert (read["method"], read["path"], read["status"], read["user_id"]) == (
        "GET", f"/api/documents/{doc['id']}", 200, alice)
    bad = access["proc-bad-1"]
    assert (bad["method"], bad["path"], bad["status"]) == ("GET", "/api/documents", 401)
    assert bad["user_id"] is None
    # One line per request, health polls included, each with its own id.
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert len(request_lines) == len({line["request_id"] for line in request_lines})
    assert sum(1 for line in request_lines if line["path"] == "/api/documents" and line["method"] == "POST") == 3
    assert access["proc-in-flight"]["status"] == 201
    assert f"listening on http://127.0.0.1:{server.port}" in messages
    assert "stopped on SIGTERM" in messages
    # Checked last, so that the checks above report first. A graceful stop
    # exits 0 (uvicorn's re-raised signal no longer kills the process before
    # its exit hooks); anything else (a crash, a timeout kill) fails here.
    assert code == 0, f"exit status {code} after SIGTERM"
