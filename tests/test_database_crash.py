"""Database crash: kill -9 the postmaster under a stream of writes.

The real server process (`python server.py`) over a private cluster. While
four clients stream `POST /api/documents`, the postmaster is killed outright
and started again. Every write that got a 2xx must be in the database; every
other answer must be a JSON 503 (never a 500, never a connection dropped
without a response); and the same server process must serve writes again
by itself.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.crash_support import PrivateCluster, free_port
from tests.support import REPO, bearer, create_user

CLIENTS = 4


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def _start_server(dsn: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        # Requests log in as the real request login, as in production.
        "CENTRID_REQUEST_DATABASE_URL": dsn.replace("postgres@", "centrid_authenticator@", 1),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "CENTRID_JWT_SECRET": TEST_JWT_SECRET,
        "CENTRID_AUTO_MIGRATE": "1",
        "CENTRID_DATA_DIR": str(tmp_path / "data"),
        "CENTRID_POOL_MAX_SIZE": "4",
        "CENTRID_POOL_ACQUIRE_TIMEOUT": "2",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CENTRID_LOG_LEVEL", None)
    stderr_path = tmp_path / "server.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "server.py"], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{stderr_path.read_text()}")
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                return proc, base_url, stderr_path
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server never became healthy:\n{stderr_path.read_text()}")
        time.sleep(0.1)


async def test_postmaster_killed_under_writes(private_cluster: PrivateCluster, tmp_path: Path) -> None:
    proc, base_url, stderr_path = _start_server(private_cluster.dsn, tmp_path)
    try:
        owner = await asyncpg.connect(private_cluster.dsn)
        try:
            alice = await create_user(owner)
        finally:
            await owner.close()
        headers = bearer(alice)

        acknowledged: list[str] = []
        unavailable: list[dict[str, object]] = []
        other: list[tuple[int, str]] = []
        dropped: list[str] = []
        stop = asyncio.Event()
        phase = {"restarted": False}
        after_restart: list[str] = []

        async def stream(n: int) -> None:
            # A new connection per request (keep-alive off) so a server that
            # closes a connection without answering shows as a transport error
            # on that very request, not as a stale pooled socket.
            async with httpx.AsyncClient(
                base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
            ) as client:
                while not stop.is_set():
                    name = f"c{n}-{uuid.uuid4().hex}.txt"
                    restarted = phase["restarted"]
                    try:
                        r = await client.post(
                            "/api/documents",
                            json={"filename": name, "file_type": "text/plain", "file_size": 1},
                            headers=headers,
                        )
                    except httpx.TransportError as exc:
                        dropped.append(f"{name}: {exc!r}")
                        continue
                    if 200 <= r.status_code < 300:
                        acknowledged.append(name)
                        if restarted:
                            after_restart.append(name)
                    elif r.status_code == 503:
                        assert r.headers["content-type"].startswith("application/json"), r.text
                        unavailable.append(r.json()["error"])
                        await asyncio.sleep(0.01)
                    else:
                        other.append((r.status_code, r.text))

        streams = [asyncio.ensure_future(stream(n)) for n in range(CLIENTS)]
        try:
            await _wait_until(lambda: len(acknowledged) >= 100, "writes before the crash")
            before_crash = len(acknowledged)
            private_cluster.kill9()
            await _wait_until(lambda: len(unavailable) >= 20, "503s while the database is down")
            await asyncio.to_thread(private_cluster.start)
            phase["restarted"] = True
            # Recovers by itself: the same server process acknowledges writes again.
            await _wait_until(lambda: len(after_restart) >= 50, "writes after the restart", timeout=20)
        finally:
            stop.set()
            await asyncio.gather(*streams, return_exceptions=True)
        for task in streams:
            assert task.exception() is None, task.exception()

        print(f"acknowledged {len(acknowledged)} (before the crash {before_crash}, after the restart "
              f"{len(after_restart)}), 503 {len(unavailable)}, other {len(other)}, dropped {len(dropped)}")
        assert dropped == [], dropped[:5]
        assert other == [], other[:5]
        assert before_crash >= 100 and unavailable
        for error in unavailable:
            assert error["code"] in {"database_unavailable", "timeout"}, error
            assert isinstance(error["message"], str) and error["message"]

        owner = await asyncpg.connect(private_cluster.dsn)
        try:
            stored = {row["filename"] for row in await owner.fetch("SELECT filename FROM documents")}
        finally:
            await owner.close()
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:3]}"
        assert proc.poll() is None, "the server died"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # asyncpg's pool logs (as a warning, with the exception) each failed
    # attempt to reopen its minimum connections while the database is down;
    # that is the library retrying, not a request failing.
    bad = [
        line for line in stderr_path.read_text(errors="replace").splitlines()
        if '"logger":"asyncpg.pool"' not in line
        and any(s in line for s in ("Exception in ASGI application", "unmapped database error", "Traceback"))
    ]
    assert bad == [], "\n".join(bad)[:4000]


async def _wait_until(condition: object, what: str, timeout: float = 15) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
