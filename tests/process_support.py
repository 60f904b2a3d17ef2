"""Driving the real `python server.py` process: start, wait, read its log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from centrid.db.embedded import postgres_processes
from centrid.db.embedded.cluster import Cluster
from tests.support import REPO


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, stderr_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.stderr_path = stderr_path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stderr().splitlines():
            if line.strip():
                lines.append(json.loads(line))  # every line is one JSON object
        return lines

    def messages(self) -> list[str]:
        return [str(line.get("message", "")) for line in self.log_lines()]

    def accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.stderr()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_server(env: dict[str, str], logs: Path, name: str = "server") -> ServerProcess:
    """`python server.py` with `env` (PORT chosen here), healthy or failed."""
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    logs.mkdir(parents=True, exist_ok=True)
    stderr_path = logs / f"{name}.stderr.log"
    with open(stderr_path, "wb") as err, open(logs / f"{name}.stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "server.py"], cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
    srv = ServerProcess(proc, port, stderr_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{srv.stderr()}")
            try:
                if httpx.get(srv.base_url + "/health", timeout=1).status_code == 200:
                    return srv
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server never became healthy:\n{srv.stderr()}")
            time.sleep(0.1)
    except BaseException:
        srv.kill()
        raise


def embedded_env(data_dir: Path) -> dict[str, str]:
    """The environment of a server on its own embedded database in `data_dir`."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CENTRID_REQUEST_DATABASE_URL", "CENTRID_JWT_SECRET", "CENTRID_LOG_LEVEL"}}
    return {**env, "CENTRID_DATA_DIR": str(data_dir), "CENTRID_AUTO_MIGRATE": "1"}


def running_embedded_dsn(data_dir: Path, database: str = "postgres") -> str:
    """The superuser DSN of the embedded server running in `data_dir`, read
    from its postmaster.pid: connecting this way does not register the test
    as one of the server's users, so it cannot keep the server running."""
    lines = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/{database}?host={quote(lines[4], safe='/')}&port={lines[3]}"



def embedded_dir_fixtures(name: str) -> tuple[Any, Any]:
    """`shared_dir` (one data directory for a test module, its cluster
    stopped at the end) and `data_dir` (that directory for one test, which
    fails if the test left PostgreSQL running; stopped anyway, so one
    failure does not cascade). Assign both at module level."""

    @pytest.fixture(scope="module")
    def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
        directory = tmp_path_factory.mktemp(name)
        yield directory
        Cluster(directory).stop()

    @pytest.fixture
    def data_dir(shared_dir: Path) -> Iterator[Path]:
        yield shared_dir
        leftover = postgres_processes(shared_dir)
        if leftover:
            Cluster(shared_dir).stop()
        assert not leftover, f"PostgreSQL still running after the test: {[p.pid for p in leftover]}"

    return shared_dir, data_dir
