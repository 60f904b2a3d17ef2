"""The HS256 secret that signs user tokens.

CENTRID_JWT_SECRET in production (Supabase's "JWT secret"). Without it a
development secret is generated once and kept, mode 0600, in the data
directory, so tokens minted by `piccolo centrid token` stay valid across
restarts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from centrid.config import Settings, settings


@dataclass(frozen=True)
class JwtSecret:
    value: str
    source: str  # for the start-up log line; never the value itself


def jwt_secret(cfg: Settings | None = None) -> JwtSecret:
    cfg = cfg or settings()
    if cfg.jwt_secret:
        return JwtSecret(cfg.jwt_secret, "CENTRID_JWT_SECRET")
    path: Path = cfg.data_dir / "jwt_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of processes starting together, exactly one generates it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return JwtSecret(_read(path), f"development secret reused from {path}")
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return JwtSecret(_read(path), f"development secret generated in {path}")


def _read(path: Path) -> str:
    """The saved secret; a process that lost the O_EXCL race may look
    before the winner has written it, so an empty file is waited for briefly."""
    import time

    deadline = time.monotonic() + 5
    while not (value := path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to generate a new development secret")
    return value
