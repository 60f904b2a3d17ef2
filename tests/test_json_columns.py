"""A JSON column stores the JSON value sent, as sent (issue 7, defect 3).

A string stays a string - `"abc"`, `"{\\"a\\":1}"`, `"123"` - on POST and
PATCH alike, for every JSON column: agent_requests.results,
agent_sessions.context_state and request_chain, usage_events.metadata.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.api_support import service
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

VALUES: list[Any] = ["abc", '{"a":1}', "123", "", "null", 123, 1.5, True, {"a": 1}, [1, "x", None], {"s": '{"b":2}'}]


async def _stored(db: MigratedDB, table: str, column: str, row_id: str) -> Any:
    text = await db.owner.fetchval(f"SELECT {column}::text FROM {table} WHERE id = $1", uuid.UUID(row_id))
    return json.loads(text)


async def test_context_state_post_and_patch(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for value in VALUES:
        await _context_state_round_trip(db, client, alice, value)


async def _context_state_round_trip(db: MigratedDB, client: httpx.AsyncClient, alice: str, value: Any) -> None:
    r = await client.post("/api/agent-sessions", json={"context_state": value}, headers=bearer(alice))
    assert r.status_code == 201, (value, r.text)
    session = r.json()
    assert session["context_state"] == value
    assert await _stored(db, "agent_sessions", "context_state", session["id"]) == value

    r = await client.post("/api/agent-sessions", json={"context_state": {"before": 1}}, headers=bearer(alice))
    other = r.json()["id"]
    r = await client.patch(f"/api/agent-sessions/{other}", json={"context_state": value}, headers=bearer(alice))
    assert r.status_code == 200, (value, r.text)
    assert r.json()["context_state"] == value
    assert await _stored(db, "agent_sessions", "context_state", other) == value
    r = await client.get(f"/api/agent-sessions/{other}", headers=bearer(alice))
    assert r.json()["context_state"] == value


async def test_results_post_and_patch(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for value in VALUES:
        await _results_round_trip(db, client, alice, value)


async def _results_round_trip(db: MigratedDB, client: httpx.AsyncClient, alice: str, value: Any) -> None:
    body = {"user_id": alice, "agent_type": "research", "content": "x", "results": value}
    r = await client.post("/api/agent-requests", json=body, headers=service())
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["results"] == value
    assert await _stored(db, "agent_requests", "results", created["id"]) == value

    r = await client.post("/api/agent-requests", json={**body, "results": None}, headers=service())
    other = r.json()["id"]
    r = await client.patch(f"/api/agent-requests/{other}", json={"results": value}, headers=service())
    assert r.status_code == 200, (value, r.text)
    assert r.json()["results"] == value
    assert await _stored(db, "agent_requests", "results", other) == value


async def test_metadata_post(db: MigratedDB, client: httpx.AsyncClient) -> None:
    # usage_events is insert-only: POST is its only write.
    alice = await create_user(db.owner)
    for value in VALUES:
        r = await client.post(
            "/api/usage-events", json={"user_id": alice, "event_type": "x", "metadata": value}, headers=service()
        )
        assert r.status_code == 201, r.text
        assert r.json()["metadata"] == value
        assert await _stored(db, "usage_events", "metadata", r.json()["id"]) == value


async def test_request_chain_post_and_patch(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    chain = [str(uuid.uuid4()), str(uuid.uuid4())]
    r = await client.post("/api/agent-sessions", json={"request_chain": chain}, headers=bearer(alice))
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["request_chain"] == chain
    assert await _stored(db, "agent_sessions", "request_chain", session["id"]) == chain
    new_chain = [*reversed(chain), str(uuid.uuid4())]
    r = await client.patch(f"/api/agent-sessions/{session['id']}", json={"request_chain": new_chain},
                           headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert r.json()["request_chain"] == new_chain
    assert await _stored(db, "agent_sessions", "request_chain", session["id"]) == new_chain
    # A string is not a chain of ids: a 422, not a re-parsed document.
    r = await client.patch(f"/api/agent-sessions/{session['id']}", json={"request_chain": json.dumps(chain)},
                           headers=bearer(alice))
    assert r.status_code == 422, r.text
