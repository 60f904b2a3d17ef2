"""Error bodies never carry PostgreSQL's own text (CONTRACT.md, "Data rules").

The database judges (NOT NULL, unique, CHECK); the body names the field in
our words. These reach the database on purpose: an explicit null for a
NOT NULL column that has a default passes the input models, and a duplicate
chunk index is only known to the unique constraint.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api_support import DOC, assert_error, make_chunks, make_document, service, table_snapshot
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

# What PostgreSQL's messages for these errors contain.
PG_TEXT = ("violates", "constraint", "relation", "null value in column", "duplicate key", "_key", "_check",
           "user_profiles", "documents\"", "document_chunks", "agent_sessions")


def assert_no_postgres_text(r: httpx.Response) -> None:
    for fragment in PG_TEXT:
        assert fragment not in r.text, (fragment, r.text)


async def test_explicit_nulls_and_a_duplicate_are_answered_in_our_words(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice)
    await make_chunks(client, alice, doc["id"], ["zero"])
    before = await table_snapshot(db.owner)
    cases: list[tuple[str, str, dict[str, str], Any, int, str]] = [
        ("POST", "/api/documents", bearer(alice), {**DOC, "processing_status": None}, 422, "processing_status"),
        ("PATCH", f"/api/documents/{doc['id']}", bearer(alice), {"processing_status": None}, 422, "processing_status"),
        ("POST", "/api/agent-sessions", bearer(alice), {"request_chain": None}, 422, "request_chain"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"plan_type": None}, 422, "plan_type"),
        ("POST", f"/api/documents/{doc['id']}/chunks", bearer(alice), {"chunk_index": 0, "content": "dup"}, 409,
         "chunk_index"),
    ]
    for method, path, headers, body, status, field in cases:
        r = await client.request(method, path, json=body, headers=headers)
        error = assert_error(r, status)
        assert field in {d.get("field") for d in error["details"] if isinstance(d, dict)}, (path, error)
        assert_no_postgres_text(r)
    assert await table_snapshot(db.owner) == before
