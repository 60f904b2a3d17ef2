"""Explicit null and missing owners are per-field 422s (issue 7, defect 4).

An explicit `null` for a NOT NULL column, or a service_role create without
`user_id` (a service key has no `sub` for the owner default), is a 422
naming the field; no error body carries PostgreSQL's text, relation or
constraint names; and the OpenAPI document declares exactly that: a NOT NULL
column is never nullable, one without a default is required.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api_support import assert_error, service
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

POSTGRES_WORDS = ("relation", "constraint", "violates", "null value", "usage_events", "documents_", "agent_requests", "agent_sessions", "user_profiles", "_check", "_fkey")

CREATES: dict[str, tuple[str, dict[str, Any]]] = {
    "/api/documents": ("documents", {"filename": "a.txt", "file_type": "text/plain", "file_size": 1}),
    "/api/agent-requests": ("agent_requests", {"agent_type": "research", "content": "x"}),
    "/api/agent-sessions": ("agent_sessions", {}),
    "/api/usage-events": ("usage_events", {"event_type": "x"}),
}


def _assert_names_only(response: httpx.Response, field: str) -> None:
    error = assert_error(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == [field], error
    text = response.text.lower()
    for word in POSTGRES_WORDS:
        assert word not in text, response.text


async def _not_null_columns(db: MigratedDB, table: str) -> dict[str, bool]:
    """NOT NULL columns of `table` -> whether they have a default."""
    rows = await db.owner.fetch(
        "SELECT column_name, column_default IS NOT NULL AS has_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 AND is_nullable = 'NO'",
        table,
    )
    return {r["column_name"]: r["has_default"] for r in rows}


@pytest.mark.parametrize("path", list(CREATES))
async def test_explicit_null_on_create_is_a_per_field_422(db: MigratedDB, client: httpx.AsyncClient, path: str) -> None:
    alice = await create_user(db.owner)
    table, body = CREATES[path]
    full = {**body, "user_id": alice}
    schema = (await client.get("/openapi.json")).json()
    ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    not_null = await _not_null_columns(db, table)
    checked = 0
    for field in properties:
        if field not in not_null:
            continue
        r = await client.post(path, json={**full, field: None}, headers=service())
        _assert_names_only(r, field)
        checked += 1
    assert checked >= 1
    assert await db.owner.fetchval(f"SELECT count(*) FROM {table}") == 0


@pytest.mark.parametrize("path", list(CREATES))
async def test_service_role_create_without_user_id_names_it(
    db: MigratedDB, client: httpx.AsyncClient, path: str
) -> None:
    table, body = CREATES[path]
    r = await client.post(path, json=body, headers=service())
    _assert_names_only(r, "user_id")
    assert await db.owner.fetchval(f"SELECT count(*) FROM {table}") == 0


PATCHES = {
    "/api/documents": ("documents", ["filename", "file_type", "file_size", "processing_status"]),
    "/api/agent-requests": ("agent_requests", ["agent_type", "content", "status", "progress"]),
    "/api/agent-sessions": ("agent_sessions", ["request_chain"]),
}


@pytest.mark.parametrize("path", list(PATCHES))
async def test_explicit_null_on_patch_is_a_per_field_422(db: MigratedDB, client: httpx.AsyncClient, path: str) -> None:
    alice = await create_user(db.owner)
    table, fields = PATCHES[path]
    r = await client.post(path, json={**CREATES[path][1], "user_id": alice}, headers=service())
    assert r.status_code == 201, r.text
    row = r.json()
    for field in fields:
        r = await client.patch(f"{path}/{row['id']}", json={field: None}, headers=service())
        _assert_names_only(r, field)
    r = await client.get(f"{path}/{row['id']}", headers=bearer(alice))
    assert r.json() == row


async def test_profile_patch_null_is_a_per_field_422(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for field in ("plan_type", "usage_count", "subscription_status"):
        r = await client.patch(f"/api/profiles/{alice}", json={field: None}, headers=service())
        _assert_names_only(r, field)
    r = await client.patch("/api/profile", json={"name": None}, headers=bearer(alice))
    assert r.status_code == 200 and r.json()["name"] is None  # name is nullable


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(_nullable(p) for p in prop.get("anyOf", []))


async def test_openapi_says_what_the_server_accepts(db: MigratedDB, client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    tables = {"Document": "documents", "AgentRequest": "agent_requests", "AgentSession": "agent_sessions",
              "UsageEvent": "usage_events", "Profile": "user_profiles"}
    for prefix, table in tables.items():
        not_null = await _not_null_columns(db, table)
        for suffix in ("Create", "Patch"):
            component = components.get(prefix + suffix)
            if component is None:
                continue
            required = set(component.get("required", []))
            for name, prop in component["properties"].items():
                if name in not_null:
                    assert not _nullable(prop), f"{prefix}{suffix}.{name} is NOT NULL but declared nullable"
                    assert prop.get("default", "absent") is not None, f"{prefix}{suffix}.{name}: default null"
                    if suffix == "Create" and not not_null[name]:
                        assert name in required, f"{prefix}{suffix}.{name} has no default but is optional"
                else:
                    assert name not in required or suffix == "Create"
        row = components[prefix]
        for name, prop in row["properties"].items():
            if name in not_null:
                assert not _nullable(prop), f"{prefix}.{name} is NOT NULL but declared nullable"
    # An id that does not exist is still a clean 422 (foreign key), without PostgreSQL's words.
    r = await client.post("/api/documents", json={**CREATES["/api/documents"][1], "user_id": str(uuid.uuid4())},
                          headers=service())
    _assert_names_only(r, "user_id")
