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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return JwtSecret(path.read_text().strip(), f"development secret generated in {path}")
