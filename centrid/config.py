"""Every environment variable the project reads, in one place.

Reading the environment anywhere else makes configuration impossible to
audit; import `settings()` instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    request_database_url: str | None
    data_dir: Path
    auto_migrate: bool
    host: str
    port: int
    jwt_secret: str | None
    cors_origins: tuple[str, ...]
    max_body_bytes: int
    max_batch_body_bytes: int
    pool_min_size: int
    pool_max_size: int
    pool_acquire_timeout: float
    statement_timeout_ms: int
    statement_cache_size: int
    log_level: str
    admin_secure_cookies: bool
    token_cache_size: int = 10_000
    workers: int = 1
    metrics_port: int | None = None

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = os.environ.get("CENTRID_DATA_DIR", "").strip()
        origins = os.environ.get("CENTRID_CORS_ORIGINS", "")
        return cls(
            database_url=os.environ.get("DATABASE_URL", "").strip() or None,
            request_database_url=os.environ.get("CENTRID_REQUEST_DATABASE_URL", "").strip() or None,
            data_dir=Path(data_dir).resolve() if data_dir else REPO_ROOT / ".centrid",
            auto_migrate=_flag("CENTRID_AUTO_MIGRATE", True),
            host=os.environ.get("HOST", "").strip() or "127.0.0.1",
            port=_int("PORT", 8000),
            jwt_secret=os.environ.get("CENTRID_JWT_SECRET") or None,
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            max_body_bytes=_int("CENTRID_MAX_BODY_BYTES", 1024 * 1024),
            # Chunk batches: 1,000 chunks with embeddings are ~8 MB of JSON.
            max_batch_body_bytes=_int("CENTRID_MAX_BATCH_BODY_BYTES", 16 * 1024 * 1024),
            pool_min_size=_int("CENTRID_POOL_MIN_SIZE", 1),
            pool_max_size=_int("CENTRID_POOL_MAX_SIZE", 10),
            # The admission queue's patience (centrid.request.admission): about a client's timeout.
            pool_acquire_timeout=_float("CENTRID_POOL_ACQUIRE_TIMEOUT", 10.0),
            statement_timeout_ms=_int("CENTRID_STATEMENT_TIMEOUT_MS", 15000),
            # asyncpg's named prepared statement cache; 0 behind PgBouncer in
            # transaction mode (unless it tracks them: max_prepared_statements).
            statement_cache_size=_int("CENTRID_STATEMENT_CACHE_SIZE", 100),
            log_level=os.environ.get("CENTRID_LOG_LEVEL", "").strip().upper() or "WARNING",
            admin_secure_cookies=_flag("CENTRID_ADMIN_SECURE_COOKIES", False),
            # Verified tokens kept until their exp (centrid.request.tokens.TokenCache); 0 turns it off.
            token_cache_size=_int("CENTRID_TOKEN_CACHE_SIZE", 10_000),
            # Processes `python server.py` serves with (uvicorn's --workers).
            workers=_int("CENTRID_WORKERS", 1),
            # GET /metrics (Prometheus) on HOST:this port; unset: off.
            metrics_port=_int("CENTRID_METRICS_PORT", 0) or None,
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
