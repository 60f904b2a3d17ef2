"""A 403 names only the fields the caller may not write (issue 7, defect 7),
on create as on PATCH; the database still decides, and nothing changes."""

from __future__ import annotations

import httpx

from tests.api_support import assert_error
from tests.conftest import MigratedDB
from tests.support import bearer, create_user


async def test_create_lists_only_forbidden_fields(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    body = {"agent_type": "research", "content": "x", "status": "completed", "progress": 0.5}
    r = await client.post("/api/agent-requests", json=body, headers=bearer(alice))
    error = assert_error(r, 403, "forbidden")
    assert error["details"] == {"fields": ["progress", "status"]}
    r = await client.post("/api/agent-requests", json={**body, "status": None, "progress": None, "token_cost": 3},
                          headers=bearer(alice))
    assert r.status_code == 422  # explicit null is refused before the database
    r = await client.post("/api/agent-requests", json={"agent_type": "edit", "content": "x", "token_cost": 3},
                          headers=bearer(alice))
    assert assert_error(r, 403, "forbidden")["details"] == {"fields": ["token_cost"]}
    assert await db.owner.fetchval("SELECT count(*) FROM agent_requests") == 0


async def test_patch_lists_only_forbidden_fields(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post("/api/agent-requests", json={"agent_type": "research", "content": "x"}, headers=bearer(alice))
    request_id = r.json()["id"]
    r = await client.patch(f"/api/agent-requests/{request_id}", json={"content": "y", "results": {"a": 1}},
                           headers=bearer(alice))
    assert assert_error(r, 403, "forbidden")["details"] == {"fields": ["results"]}
    r = await client.patch("/api/profile", json={"name": "A", "plan_type": "pro", "usage_count": 1},
                           headers=bearer(alice))
    assert assert_error(r, 403, "forbidden")["details"] == {"fields": ["plan_type", "usage_count"]}
    assert await db.owner.fetchval("SELECT content FROM agent_requests") == "x"


async def test_a_table_the_role_may_not_write_lists_every_field(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post("/api/usage-events", json={"event_type": "x", "tokens_used": 1}, headers=bearer(alice))
    assert assert_error(r, 403, "forbidden")["details"] == {"fields": ["event_type", "tokens_used"]}
