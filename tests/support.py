"""Helpers the tests share: users, acting as a role, running the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from centrid.request.claims import Caller, Role, enter_scope

REPO = Path(__file__).resolve().parent.parent

# Written out, not read from the code under test.
SIX_TABLES = (
    "user_profiles",
    "documents",
    "document_chunks",
    "agent_requests",
    "agent_sessions",
    "usage_events",
)


async def create_user(conn: asyncpg.Connection, name: str | None = None, email: str | None = None) -> str:
    """Insert an auth user as the owner; the database trigger adds its profile."""
    meta = json.dumps({"name": name}) if name is not None else None
    user_id = await conn.fetchval(
        "INSERT INTO auth.users (email, raw_user_meta_data) VALUES ($1, $2::jsonb) RETURNING id",
        email or f"{uuid.uuid4().hex[:8]}@example.test",
        meta,
    )
    return str(user_id)


@asynccontextmanager
async def acting_as(
    dsn: str, role: Role, sub: str | None = None, *, commit: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction scoped exactly as the server scopes
    a request; rolled back unless `commit`."""
    conn = await asyncpg.connect(dsn)
    try:
        tr = conn.transaction()
        await tr.start()
        await enter_scope(conn, Caller(role=role, sub=sub))
        try:
            yield conn
        except BaseException:
            await tr.rollback()
            raise
        else:
            if commit:
                await tr.commit()
            else:
                await tr.rollback()
    finally:
        await conn.close()


def run_piccolo(args: list[str], dsn: str, cwd: Path = REPO, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `piccolo` CLI against `dsn`."""
    full_env = {**os.environ, "DATABASE_URL": dsn, **env}
    return subprocess.run(
        [sys.executable, "-m", "piccolo.main", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


async def fetch_as(dsn: str, role: Role, sub: str | None, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with acting_as(dsn, role, sub) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows


def bearer(user_id: str | None, role: str = "authenticated", ttl: int = 600, secret: str | None = None) -> dict[str, str]:
    """Authorization header with a token as Supabase would issue it."""
    from centrid.request.tokens import mint_token
    from tests.conftest import TEST_JWT_SECRET

    return {"Authorization": f"Bearer {mint_token(user_id, role, secret or TEST_JWT_SECRET, ttl_seconds=ttl)}"}


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0, interval: float = 0.01
) -> None:
    """Poll a condition (usually a database or process state) with a deadline."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
