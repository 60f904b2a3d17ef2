"""The seed's pattern: the ceiling's work with a new database connection per
request (what the seed did), for comparison at 64 and 1000 connections.

    BENCH_DSN=... BENCH_JWT_SECRET=... uvicorn seed_app:app --app-dir bench --loop uvloop --http httptools
"""

from __future__ import annotations

import os

os.environ["BENCH_MODE"] = "connect"
os.environ.setdefault("BENCH_APP_NAME", "bench-seed")

from ceiling_app import app  # noqa: E402

__all__ = ["app"]
