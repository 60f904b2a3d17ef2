"""What the server says at start (defect 11): where the JWT secret came
from, and a database migrated by code newer than this one.

The listening address is checked on the real process
(tests/test_server_process.py, tests/test_graceful_stop.py)."""

from __future__ import annotations

import asyncio
import logging
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from centrid.config import settings
from centrid.request.secret import jwt_secret
from tests.conftest import MigratedDB


def test_the_development_secret_is_generated_once_then_reused(tmp_path: Path) -> None:
    cfg = replace(settings(), jwt_secret=None, data_dir=tmp_path / "data")
    path = cfg.data_dir / "jwt_secret"
    first = jwt_secret(cfg)
    assert first.source == f"development secret generated in {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = jwt_secret(cfg)
    assert second.source == f"development secret reused from {path}"
    assert second.value == first.value and len(first.value) >= 32
    assert first.value not in first.source


def test_an_explicit_secret_says_so() -> None:
    cfg = replace(settings(), jwt_secret="x" * 40)
    assert jwt_secret(cfg).source == "CENTRID_JWT_SECRET"


async def test_starting_processes_agree_on_one_generated_secret(tmp_path: Path) -> None:
    """uvicorn workers starting together: one generates, the others reuse."""
    cfg = replace(settings(), jwt_secret=None, data_dir=tmp_path / "data")
    secrets = await asyncio.gather(*(asyncio.to_thread(jwt_secret, cfg) for _ in range(8)))
    assert len({s.value for s in secrets}) == 1
    assert sum("generated" in s.source for s in secrets) == 1


async def test_a_database_ahead_of_the_code_is_a_warning_not_up_to_date(
    db: MigratedDB, caplog: pytest.LogCaptureFixture
) -> None:
    from centrid.db.migration_runner import apply_migrations

    caplog.set_level(logging.INFO, logger="centrid.server")
    await apply_migrations()
    assert [r.getMessage() for r in caplog.records if r.name == "centrid.server"] == ["schema up to date"]

    caplog.clear()
    future = "2099-01-01T00:00:00:000000"
    await db.owner.execute(
        "INSERT INTO migration (name, app_name, ran_on) VALUES ($1, 'centrid', now())", future)
    await apply_migrations()
    records = [r for r in caplog.records if r.name == "centrid.server"]
    assert [r.levelno for r in records] == [logging.WARNING], [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert f"centrid:{future}" in message
    assert "does not know" in message and "newer version" in message


async def test_each_migration_applied_at_start_is_logged_once(
    empty_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Named from Piccolo's records of what this run added, in the order it ran."""
    import asyncpg
    import piccolo_conf
    from centrid.db.engine import retarget
    from centrid.db.migration_runner import apply_migrations

    engine = piccolo_conf.DB
    if engine.pool is not None:
        await engine.close_connection_pool()
    previous_dsn = engine.config["dsn"]
    retarget(engine, empty_dsn)
    caplog.set_level(logging.INFO, logger="centrid.server")
    try:
        await apply_migrations()
        applied = [r.getMessage() for r in caplog.records if r.name == "centrid.server"]
        caplog.clear()
        await apply_migrations()
        again = [r.getMessage() for r in caplog.records if r.name == "centrid.server"]
    finally:
        retarget(engine, previous_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        recorded = [r["name"] for r in await conn.fetch("SELECT name FROM migration ORDER BY id")]
    finally:
        await conn.close()
    centrid_ids = {
        str(line.split('"')[1])
        for path in (Path(__file__).parent.parent / "centrid" / "piccolo_migrations").glob("centrid_*.py")
        for line in path.read_text().splitlines()
        if line.startswith("ID = ")
    }
    assert centrid_ids and centrid_ids <= set(recorded)
    assert applied == [f"applied migration {name}" for name in recorded]
    assert again == ["schema up to date"]


@pytest.mark.parametrize("auto_migrate", [True, False])
async def test_the_app_migrates_at_start_unless_told_not_to(
    app_settings: Any, caplog: pytest.LogCaptureFixture, auto_migrate: bool
) -> None:
    """CENTRID_AUTO_MIGRATE (default on) decides whether the start runs the migrations."""
    from centrid.api.app import create_app

    caplog.set_level(logging.INFO, logger="centrid.server")
    app = create_app(replace(app_settings, auto_migrate=auto_migrate))
    async with app.router.lifespan_context(app):
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "centrid.server"]
    assert ("schema up to date" in messages) == auto_migrate, messages
