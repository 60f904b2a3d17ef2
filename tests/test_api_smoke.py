"""A first walk through the API in process; the full matrices live beside it."""

import httpx

from tests.conftest import MigratedDB
from tests.support import bearer, create_user


async def test_user_creates_and_reads_a_document(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    bob = await create_user(db.owner, name="Bob")
    created = await client.post(
        "/api/documents",
        json={"filename": "a.txt", "file_type": "text/plain", "file_size": 3, "content_text": "cats"},
        headers=bearer(alice),
    )
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["user_id"] == alice
    mine = await client.get(f"/api/documents/{doc['id']}", headers=bearer(alice))
    assert mine.status_code == 200
    theirs = await client.get(f"/api/documents/{doc['id']}", headers=bearer(bob))
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    profile = await client.get("/api/profile", headers=bearer(alice))
    assert profile.json()["name"] == "Alice"
    assert "x-request-id" in profile.headers
