"""Promises of the README and CONTRACT.md that had no test of their own:

- the server applies pending migrations at start, and skips them with
  `CENTRID_AUTO_MIGRATE=0` (an in-process app, lifespan included, over an
  empty database);
- `piccolo centrid create_user EMAIL [--name NAME]` through the real CLI
  prints the new auth.users id, and the database trigger made its profile.

(`CENTRID_CORS_ORIGINS` parsing: tests/test_pure_logic.py and
tests/test_cors_origins.py.)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from centrid.config import Settings
from tests.api_support import app_client
from tests.cluster import Cluster
from tests.conftest import TEST_JWT_SECRET, MigratedDB, authenticator_dsn
from tests.support import SIX_TABLES, bearer, run_piccolo

@pytest.fixture
async def unmigrated(cluster: Cluster, template_dsn: str, empty_dsn: str) -> AsyncIterator[str]:
    """An empty database, with Piccolo's engine pointed at it for the test
    (the app migrates and serves through that engine). `template_dsn`: the
    cluster-wide roles exist, with the test password of the request login."""
    import piccolo_conf
    from centrid.db.engine import retarget

    engine = piccolo_conf.DB
    if engine.pool is not None:
        await engine.close_connection_pool()
    previous = engine.config["dsn"]
    retarget(engine, empty_dsn)
    try:
        yield empty_dsn
    finally:
        if engine.pool is not None:
            await engine.close_connection_pool()
        retarget(engine, previous)


def _settings_from_env(dsn: str) -> Settings:
    """As the server reads them (CENTRID_AUTO_MIGRATE included), over the test database."""
    return replace(
        Settings.from_env(),
        database_url=dsn,
        request_database_url=authenticator_dsn(dsn),
        jwt_secret=TEST_JWT_SECRET,
        pool_min_size=1,
        pool_max_size=2,
    )


async def _schema(dsn: str) -> dict[str, object]:
    """The six tables present, and Piccolo's ledger of applied migrations."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1::text[])",
            list(SIX_TABLES),
        )
        has_ledger = await conn.fetchval("SELECT to_regclass('public.migration') IS NOT NULL")
        ledger = await conn.fetch("SELECT app_name, name FROM migration") if has_ledger else []
        return {"tables": tables, "applied": sorted((r["app_name"], r["name"]) for r in ledger)}
    finally:
        await conn.close()


async def test_the_server_applies_pending_migrations_at_start(
    unmigrated: str, template_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CENTRID_AUTO_MIGRATE", raising=False)  # the default: on
    assert await _schema(unmigrated) == {"tables": 0, "applied": []}
    # What `piccolo migrations forwards all` (run by the CLI on the template) applies.
    expected = await _schema(template_dsn)
    migration_ids = sorted(name for _, name in expected["applied"])  # type: ignore[attr-defined]
    assert expected["tables"] == 6 and any(app == "centrid" for app, _ in expected["applied"])  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="centrid")
    async with app_client(_settings_from_env(unmigrated)) as (_, client):
        assert await _schema(unmigrated) == expected
        # And the migrated database serves, RLS and all.
        owner = await asyncpg.connect(unmigrated)
        try:
            user = str(await owner.fetchval(
                "INSERT INTO auth.users (email, raw_user_meta_data) VALUES ('m@example.test', '{\"name\": \"M\"}') "
                "RETURNING id"))
        finally:
            await owner.close()
        r = await client.get("/api/profile", headers=bearer(user))
        assert r.status_code == 200 and r.json()["name"] == "M", r.text
        assert (await client.get("/health")).json() == {"status": "ok", "database": "ok"}
    logged = [r.getMessage() for r in caplog.records if r.name == "centrid.server"]
    assert sorted(m for m in logged if m.startswith("applied migration ")) == [
        f"applied migration {m}" for m in migration_ids]

    # A restart finds nothing to do.
    caplog.clear()
    async with app_client(_settings_from_env(unmigrated)) as (_, client):
        assert (await client.get("/health")).status_code == 200
    assert await _schema(unmigrated) == expected
    logged = [r.getMessage() for r in caplog.records if r.name == "centrid.server"]
    assert "schema up to date" in logged and not any(m.startswith("applied migration") for m in logged)


async def test_auto_migrate_off_leaves_the_database_alone(unmigrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRID_AUTO_MIGRATE", "0")
    cfg = _settings_from_env(unmigrated)
    assert cfg.auto_migrate is False
    async with app_client(cfg) as (_, client):
        # Started, pool open, database reachable - and not migrated.
        assert (await client.get("/health")).json() == {"status": "ok", "database": "ok"}
        assert await _schema(unmigrated) == {"tables": 0, "applied": []}
    assert await _schema(unmigrated) == {"tables": 0, "applied": []}


# --- piccolo centrid create_user ------------------------------------------------------


async def _user_and_profile(db: MigratedDB, printed: str) -> tuple[str, str | None, str | None]:
    user_id = uuid.UUID(printed)  # the output is exactly one id
    row = await db.owner.fetchrow(
        "SELECT u.email, p.name, p.plan_type FROM auth.users u JOIN user_profiles p ON p.user_id = u.id WHERE u.id = $1",
        user_id,
    )
    assert row is not None, f"no auth user with a profile for {printed}"
    assert row["plan_type"] == "free"
    return row["email"], row["name"], str(user_id)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--name", "Zoë Example"], "Zoë Example"),
        ([], None),
    ],
)
async def test_create_user_prints_the_new_id_and_the_profile_exists(
    db: MigratedDB, client: httpx.AsyncClient, args: list[str], name: str | None
) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.test"
    result = run_piccolo(["centrid", "create_user", email, *args], db.dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout.strip()
    assert "\n" not in printed, result.stdout
    stored_email, stored_name, user_id = await _user_and_profile(db, printed)
    assert (stored_email, stored_name) == (email, name)
    assert await db.owner.fetchval("SELECT count(*) FROM auth.users") == 1
    # The printed id is usable as a token's subject, as the README shows.
    r = await client.get("/api/profile", headers=bearer(user_id))
    assert r.status_code == 200 and r.json()["user_id"] == user_id and r.json()["name"] == name
