"""`python server.py` with CENTRID_WORKERS=2 on an empty database: both
workers start and migrate, the run lock lets exactly one apply the
migrations, and the service answers and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import TEST_JWT_SECRET
from tests.support import REPO, bearer, create_user


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]


async def test_two_workers_migrate_once_and_serve(empty_dsn: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": empty_dsn,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "CENTRID_WORKERS": "2",
        "CENTRID_JWT_SECRET": TEST_JWT_SECRET,
        "CENTRID_AUTO_MIGRATE": "1",
        "CENTRID_DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CENTRID_LOG_LEVEL", None)
    stderr = tmp_path / "stderr.log"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "server.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while sum("request pool open" in str(line.get("message")) for line in _log(stderr)) < 2:
            assert proc.poll() is None, f"server exited with {proc.returncode}:\n{stderr.read_text()}"
            assert time.monotonic() < deadline, f"two workers never opened their pools:\n{stderr.read_text()}"
            time.sleep(0.1)

        messages = [str(line.get("message")) for line in _log(stderr)]
        applied = [m.removeprefix("applied migration ") for m in messages if m.startswith("applied migration ")]
        assert applied, messages
        assert len(applied) == len(set(applied)), "a migration was applied twice"
        assert messages.count("schema up to date") == 1  # the other worker, after the lock
        owner = await asyncpg.connect(empty_dsn)
        try:
            recorded = await owner.fetch("SELECT name, count(*) AS n FROM migration GROUP BY name")
            assert recorded and all(r["n"] == 1 for r in recorded)
            alice = await create_user(owner)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for i in range(20):
                    r = await client.post("/api/documents", headers=bearer(alice),
                                          json={"filename": f"w{i}.txt", "file_type": "text/plain", "file_size": 1})
                    assert r.status_code == 201, r.text
                    listed = await client.get("/api/documents", headers=bearer(alice))
                    assert listed.status_code == 200 and len(listed.json()["items"]) == min(i + 1, 20)
            assert await owner.fetchval("SELECT count(*) FROM documents") == 20
        finally:
            await owner.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
