"""Money is exact (issue 7, defect 2): usage_events.cost is numeric(14,6).

`0.01` is stored and returned as `0.01`; values numeric(14,6) cannot hold
are a per-field 422; sums of any size are answered; the migration from
`real` keeps existing rows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import httpx
import pytest

from tests.api_support import assert_error, service
from tests.conftest import MigratedDB
from tests.support import create_user, run_piccolo

# The migration before the one that makes `cost` numeric.
BEFORE_NUMERIC = "2026-11-24T21:53:01:509701"


async def _event(client: httpx.AsyncClient, user: str, cost: object) -> httpx.Response:
    return await client.post(
        "/api/usage-events", json={"user_id": user, "event_type": "money", "cost": cost}, headers=service()
    )


@pytest.mark.parametrize(
    ("sent", "text", "stored"),
    [
        ("0.01", "0.01", Decimal("0.01")),
        ("0.1", "0.1", Decimal("0.1")),
        ("12345678.123456", "12345678.123456", Decimal("12345678.123456")),
        ("99999999.999999", "99999999.999999", Decimal("99999999.999999")),
        ("0.000001", "0.000001", Decimal("0.000001")),
        ("7", "7", Decimal("7")),
        ("0", "0", Decimal("0")),
    ],
)
async def test_cost_is_stored_and_returned_exactly(
    db: MigratedDB, client: httpx.AsyncClient, sent: str, text: str, stored: Decimal
) -> None:
    alice = await create_user(db.owner)
    body = f'{{"user_id": "{alice}", "event_type": "money", "cost": {sent}}}'.encode()
    r = await client.post(
        "/api/usage-events", content=body, headers={**service(), "content-type": "application/json"}
    )
    assert r.status_code == 201, r.text
    assert f'"cost":{text},' in r.text, r.text  # a JSON number, digit for digit
    event_id = uuid.UUID(r.json()["id"])
    assert await db.owner.fetchval("SELECT cost FROM usage_events WHERE id = $1", event_id) == stored
    listed = await client.get("/api/usage-events", params={"user_id": alice}, headers=service())
    assert f'"cost":{text},' in listed.text, listed.text


@pytest.mark.parametrize("cost", [1e-7, 0.0000015, 100000000, 3e38, -0.01, "0.01", True, 1e400])
async def test_cost_beyond_numeric_14_6_is_a_per_field_422(
    db: MigratedDB, client: httpx.AsyncClient, cost: object
) -> None:
    alice = await create_user(db.owner)
    if cost == 1e400:  # inf: not JSON; send a literal the parser turns into it
        r = await client.post(
            "/api/usage-events",
            content=f'{{"user_id": "{alice}", "event_type": "money", "cost": 1e400}}'.encode(),
            headers={**service(), "content-type": "application/json"},
        )
    else:
        r = await _event(client, alice, cost)
    if r.status_code == 400:  # a parser that refuses 1e400 outright is fine too
        return
    error = assert_error(r, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["cost"], error
    assert await db.owner.fetchval("SELECT count(*) FROM usage_events") == 0


async def test_summary_of_any_size_is_exact(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    # 3000 events at the largest cost: a sum with 18 significant digits,
    # beyond what a float (or `real`, 3.4e38 aside) represents exactly.
    await db.owner.execute(
        "INSERT INTO usage_events (user_id, event_type, cost) "
        "SELECT $1, 'big', 99999999.999999 FROM generate_series(1, 3000)",
        uuid.UUID(alice),
    )
    r = await client.get("/api/usage/summary", params={"user_id": alice}, headers=service())
    assert r.status_code == 200, r.text
    assert '"cost":299999999999.997' in r.text, r.text
    # The case of the issue: two events that would overflow `real`.
    for _ in range(2):
        assert (await _event(client, alice, 99999999.999999)).status_code == 201
    r = await client.get("/api/usage/summary", params={"user_id": alice}, headers=service())
    assert r.status_code == 200, r.text
    assert '"cost":199999999.999998' in r.text, r.text


async def test_migration_to_numeric_keeps_existing_rows(empty_dsn: str) -> None:
    for args in (["user"], ["session_auth"], ["centrid", BEFORE_NUMERIC]):
        result = run_piccolo(["migrations", "forwards", *args], empty_dsn)
        assert result.returncode == 0, result.stdout + result.stderr
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'usage_events' AND column_name = 'cost'"
        ) == "real"
        user = await create_user(conn)
        for cost in (0.01, 0.25, None, 1234.5):
            await conn.execute(
                "INSERT INTO usage_events (user_id, event_type, cost) VALUES ($1, 'old', $2::real)",
                uuid.UUID(user), cost,
            )
        result = run_piccolo(["migrations", "forwards", "all"], empty_dsn)
        assert result.returncode == 0, result.stdout + result.stderr
        column = await conn.fetchrow(
            "SELECT data_type, numeric_precision, numeric_scale, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'usage_events' AND column_name = 'cost'"
        )
        assert tuple(column) == ("numeric", 14, 6, "YES")
        costs = [r["cost"] for r in await conn.fetch("SELECT cost FROM usage_events ORDER BY cost NULLS LAST")]
        assert costs == [Decimal("0.01"), Decimal("0.25"), Decimal("1234.5"), None]
        # The check survived the type change.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO usage_events (user_id, event_type, cost) VALUES ($1, 'x', -1)",
                               uuid.UUID(user))
    finally:
        await conn.close()
