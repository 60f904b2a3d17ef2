"""Who uses a data directory's embedded PostgreSQL, and the lock that orders them.

The registry is a JSON file of user processes, each recorded by pid AND
process start time: a pid alone goes stale when its process is killed
outright and may later name an unrelated process, which is how the wheel's
own pid list made its server unstoppable. Every read drops entries whose
process is gone, is a zombie, or started at another time.

The lock is an flock(2) on a file beside it, held around every start, join
and leave, so two processes never start, or stop under each other, the same
cluster. flock belongs to the open file, and the kernel drops it when its
holder dies, so a killed process never leaves it held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from centrid.db.embedded.binaries import EmbeddedError

log = logging.getLogger("centrid.embedded")

LOCK_TIMEOUT_S = 120  # longer than a start (initdb + pg_ctl start) or a stop can take
START_TIME_TOLERANCE_S = 0.05  # start times are clock ticks since boot; equal for one process

_thread_lock = threading.Lock()  # flock does not order threads sharing one process's open file


@dataclass(frozen=True)
class User:
    pid: int
    started: float  # psutil create_time(): seconds since the epoch
    command: str  # for an operator reading the file; never compared

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return (
                abs(proc.create_time() - self.started) < START_TIME_TOLERANCE_S
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:  # another account's live process
            return True


def this_process() -> User:
    return User(os.getpid(), psutil.Process().create_time(), _command())


def _command() -> str:
    """The program and its first words, for a person reading the file: never
    an argument that could carry a DSN or a secret (the file is not private)."""
    words = [os.path.basename(sys.argv[0]) if sys.argv else "python"]
    for arg in sys.argv[1:4]:
        words.append("…" if any(c in arg for c in "@=:/") else arg)
    return " ".join(words)[:120]


class Registry:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "embedded-users.json"
        self.lock_path = data_dir / "embedded.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock, open(self.lock_path, "a") as handle:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedError(
                            f"{self.lock_path} stayed locked for {LOCK_TIMEOUT_S} s: another process is "
                            "stuck starting or stopping the embedded PostgreSQL"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def live_users(self) -> list[User]:
        """The recorded users still running; call with the lock held."""
        users = self._read()
        live = [user for user in users if user.alive()]
        for gone in set(users) - set(live):
            log.info(f"embedded PostgreSQL: dropping user pid {gone.pid} ({gone.command}), no longer running")
        return live

    def write(self, users: list[User]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"users": [asdict(u) for u in users]}, indent=1) + "\n")
        tmp.replace(self.path)

    def _read(self) -> list[User]:
        try:
            raw = json.loads(self.path.read_text())
            return [User(int(u["pid"]), float(u["started"]), str(u.get("command", ""))) for u in raw["users"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            # Writes are atomic (rename), so this was edited by hand: its
            # users cannot be trusted, and must never make a stop impossible.
            log.warning(f"ignoring unreadable {self.path}: {exc}")
            return []
