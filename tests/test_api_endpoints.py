"""Every endpoint of CONTRACT.md, on its happy path, over HTTP in process."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx

from tests.api_support import (
    ALLOWED_ORIGIN,
    TABLES,
    assert_error,
    list_all,
    make_chunks,
    make_document,
    make_request,
    make_session,
    make_usage_event,
    service,
)
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

CONTRACT_PATHS = {
    "/health": {"get"},
    "/hello": {"get"},
    "/api/profile": {"get", "patch"},
    "/api/profiles/{user_id}": {"get", "patch"},
    "/api/documents": {"get", "post"},
    "/api/documents/{id}": {"get", "patch", "delete"},
    "/api/documents/{id}/chunks": {"get", "post"},
    "/api/search": {"get"},
    "/api/agent-requests": {"get", "post"},
    "/api/agent-requests/{id}": {"get", "patch", "delete"},
    "/api/agent-sessions": {"get", "post"},
    "/api/agent-sessions/{id}": {"get", "patch", "delete"},
    "/api/usage-events": {"get", "post"},
    "/api/usage/summary": {"get"},
}


# --- system -------------------------------------------------------------------


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}
    assert r.headers["x-request-id"]


async def test_health_503_and_scoped_requests_503_when_database_unreachable(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    from piccolo_conf import DB

    # The pool is gone (as when the database cannot be reached).
    await DB.close_connection_pool()
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json() == {"status": "error", "database": "unavailable"}
    assert_error(await client.get("/api/documents"), 503, "database_unavailable")
    # A CORS preflight never touches the database, so it still works.
    pre = await client.options(
        "/api/documents",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 200


async def test_hello_counts_only_the_callers_rows(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    bob = await create_user(db.owner, name="Bob")
    doc = await make_document(client, alice)
    await make_document(client, alice)
    await make_chunks(client, alice, doc["id"], ["one", "two", "three"])
    await make_request(client, alice)
    await make_session(client, alice)
    await make_usage_event(client, alice)
    await make_usage_event(client, alice)
    # Bob owns rows too; Alice must not count them.
    bob_doc = await make_document(client, bob)
    await make_chunks(client, bob, bob_doc["id"], ["x"])
    await make_request(client, bob)
    await make_request(client, bob)
    await make_session(client, bob)
    await make_usage_event(client, bob)

    r = await client.get("/hello", headers=bearer(alice))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "authenticated"
    assert body["user_id"] == alice
    assert isinstance(body["message"], str) and body["message"]
    stamp = datetime.datetime.fromisoformat(body["timestamp"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 60
    assert body["visible_rows"] == {
        "user_profiles": 1,
        "documents": 2,
        "document_chunks": 3,
        "agent_requests": 1,
        "agent_sessions": 1,
        "usage_events": 2,
    }
    bob_counts = (await client.get("/hello", headers=bearer(bob))).json()["visible_rows"]
    assert bob_counts == {
        "user_profiles": 1,
        "documents": 1,
        "document_chunks": 1,
        "agent_requests": 2,
        "agent_sessions": 1,
        "usage_events": 1,
    }
    anon = (await client.get("/hello")).json()
    assert anon["role"] == "anon" and anon["user_id"] is None
    assert anon["visible_rows"] == {t: 0 for t in TABLES}
    everything = (await client.get("/hello", headers=service())).json()["visible_rows"]
    assert everything == {
        "user_profiles": 2,
        "documents": 3,
        "document_chunks": 4,
        "agent_requests": 3,
        "agent_sessions": 2,
        "usage_events": 3,
    }


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


async def test_openapi_describes_every_contract_path(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    spec = r.json()
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:  # not installed: check the structure by hand below
        validate = None
    if validate is not None:
        validate(spec)
    assert str(spec["openapi"]).startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    paths = spec["paths"]
    for path, methods in CONTRACT_PATHS.items():
        assert path in paths, f"{path} missing from OpenAPI"
        assert methods <= set(paths[path]), (path, set(paths[path]))
        templated = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        for method in methods:
            op = paths[path][method]
            assert op.get("responses"), (path, method)
            for code, response in op["responses"].items():
                assert code == "default" or (code.isdigit() and 100 <= int(code) < 600), (path, method, code)
                assert "description" in _resolve(spec, response), (path, method, code)
            declared = {p["name"] for p in op.get("parameters", []) + paths[path].get("parameters", []) if p["in"] == "path"}
            assert declared == set(templated), (path, method, declared)
            for param in op.get("parameters", []):
                assert param["in"] in {"path", "query", "header", "cookie"}
                if param["in"] == "path":
                    assert param["required"] is True
            for response in op["responses"].values():
                for media in _resolve(spec, response).get("content", {}).values():
                    _resolve(spec, media.get("schema", {}))  # every $ref resolves
            if "requestBody" in op:
                for media in _resolve(spec, op["requestBody"])["content"].values():
                    _resolve(spec, media["schema"])
    # Query filters the contract names are described.
    doc_params = {p["name"] for p in paths["/api/documents"]["get"].get("parameters", [])}
    assert {"processing_status", "q", "limit", "cursor"} <= doc_params
    assert "q" in {p["name"] for p in paths["/api/search"]["get"].get("parameters", [])}
    assert {"event_type", "since", "until"} <= {
        p["name"] for p in paths["/api/usage-events"]["get"].get("parameters", [])
    }
    assert "status" in {p["name"] for p in paths["/api/agent-requests"]["get"].get("parameters", [])}


# --- profiles -------------------------------------------------------------------


async def test_profile_get_and_patch_name(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    r = await client.get("/api/profile", headers=bearer(alice))
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["user_id"] == alice
    assert profile["name"] == "Alice"
    assert profile["plan_type"] == "free"
    assert profile["usage_count"] == 0
    assert profile["subscription_status"] == "active"
    r = await client.patch("/api/profile", json={"name": "Alice Liddell"}, headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Alice Liddell"
    assert r.json()["updated_at"] > profile["updated_at"]
    assert await db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", uuid.UUID(alice)) == "Alice Liddell"
    # name is nullable; an empty patch changes nothing.
    r = await client.patch("/api/profile", json={"name": None}, headers=bearer(alice))
    assert r.status_code == 200 and r.json()["name"] is None
    r = await client.patch("/api/profile", json={}, headers=bearer(alice))
    assert r.status_code == 200 and r.json()["name"] is None
    # The same through /api/profiles/{own id}.
    r = await client.get(f"/api/profiles/{alice}", headers=bearer(alice))
    assert r.status_code == 200 and r.json()["user_id"] == alice
    r = await client.patch(f"/api/profiles/{alice}", json={"name": "A."}, headers=bearer(alice))
    assert r.status_code == 200 and r.json()["name"] == "A."


async def test_service_role_reads_and_changes_any_profile(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    bob = await create_user(db.owner, name="Bob")
    for user, name in ((alice, "Alice"), (bob, "Bob")):
        r = await client.get(f"/api/profiles/{user}", headers=service())
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == user and r.json()["name"] == name
    r = await client.patch(
        f"/api/profiles/{bob}",
        json={"plan_type": "pro", "usage_count": 42, "subscription_status": "cancelled"},
        headers=service(),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["plan_type"], body["usage_count"], body["subscription_status"]) == ("pro", 42, "cancelled")
    row = await db.owner.fetchrow(
        "SELECT plan_type, usage_count, subscription_status FROM user_profiles WHERE user_id = $1", uuid.UUID(bob)
    )
    assert tuple(row) == ("pro", 42, "cancelled")
    untouched = await db.owner.fetchval("SELECT plan_type FROM user_profiles WHERE user_id = $1", uuid.UUID(alice))
    assert untouched == "free"
    # Bob sees the service's changes on his own profile.
    mine = (await client.get("/api/profile", headers=bearer(bob))).json()
    assert mine["plan_type"] == "pro" and mine["usage_count"] == 42
    # A service token with a sub works the same.
    r = await client.get(f"/api/profiles/{alice}", headers=bearer(bob, role="service_role"))
    assert r.status_code == 200 and r.json()["user_id"] == alice
    # An unknown user id is a 404.
    assert_error(await client.get(f"/api/profiles/{uuid.uuid4()}", headers=service()), 404, "not_found")


# --- documents ------------------------------------------------------------------


async def test_document_crud(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post(
        "/api/documents",
        json={
            "filename": "report.pdf",
            "file_type": "application/pdf",
            "file_size": 1234,
            "content_text": "quarterly results",
            "storage_path": "u/report.pdf",
        },
        headers=bearer(alice),
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["user_id"] == alice
    assert doc["processing_status"] == "pending"
    assert (doc["filename"], doc["file_type"], doc["file_size"]) == ("report.pdf", "application/pdf", 1234)
    assert doc["content_text"] == "quarterly results" and doc["storage_path"] == "u/report.pdf"
    uuid.UUID(doc["id"])
    assert "search_vector" not in doc

    got = await client.get(f"/api/documents/{doc['id']}", headers=bearer(alice))
    assert got.status_code == 200 and got.json() == doc

    r = await client.patch(
        f"/api/documents/{doc['id']}",
        json={"processing_status": "completed", "filename": "final.pdf", "content_text": None},
        headers=bearer(alice),
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["processing_status"] == "completed" and changed["filename"] == "final.pdf"
    assert changed["content_text"] is None
    assert changed["file_size"] == 1234  # absent means unchanged
    assert changed["updated_at"] > doc["updated_at"] and changed["created_at"] == doc["created_at"]
    assert (await client.get(f"/api/documents/{doc['id']}", headers=bearer(alice))).json() == changed

    # An empty patch returns the row unchanged.
    r = await client.patch(f"/api/documents/{doc['id']}", json={}, headers=bearer(alice))
    assert r.status_code == 200 and r.json() == changed

    r = await client.delete(f"/api/documents/{doc['id']}", headers=bearer(alice))
    assert r.status_code == 204 and r.content == b""
    assert_error(await client.get(f"/api/documents/{doc['id']}", headers=bearer(alice)), 404, "not_found")
    assert_error(await client.delete(f"/api/documents/{doc['id']}", headers=bearer(alice)), 404, "not_found")
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 0


async def test_service_role_creates_a_document_for_a_user(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post(
        "/api/documents",
        json={"user_id": alice, "filename": "s.txt", "file_type": "text/plain", "file_size": 1,
              "processing_status": "processing"},
        headers=service(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == alice and r.json()["processing_status"] == "processing"
    mine = (await client.get("/api/documents", headers=bearer(alice))).json()["items"]
    assert [d["id"] for d in mine] == [r.json()["id"]]


async def test_document_list_filters(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    cats = await make_document(client, alice, content_text="Cats are sleeping on the sofa", processing_status="completed")
    dogs = await make_document(client, alice, content_text="Dogs run in the park", processing_status="completed")
    fish = await make_document(client, alice, content_text="A cat watches the fish", processing_status="failed")
    empty = await make_document(client, alice)

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/api/documents", params=params, headers=bearer(alice))
        assert r.status_code == 200, r.text
        assert r.json()["next_cursor"] is None
        return [d["id"] for d in r.json()["items"]]

    # Newest first.
    assert await ids() == [empty["id"], fish["id"], dogs["id"], cats["id"]]
    assert await ids(processing_status="completed") == [dogs["id"], cats["id"]]
    assert await ids(processing_status="failed") == [fish["id"]]
    assert await ids(processing_status="pending") == [empty["id"]]
    assert await ids(processing_status="processing") == []
    # Full text (english stemming: "cat" finds "Cats").
    assert await ids(q="cat") == [fish["id"], cats["id"]]
    assert await ids(q="cat", processing_status="completed") == [cats["id"]]
    assert await ids(q="sleeping sofa") == [cats["id"]]
    assert await ids(q='"run in the park"') == [dogs["id"]]
    assert await ids(q="cat -fish") == [cats["id"]]
    assert await ids(q="cat or dog") == [fish["id"], dogs["id"], cats["id"]]
    assert await ids(q="giraffe") == []
    # limit
    r = await client.get("/api/documents", params={"limit": 2}, headers=bearer(alice))
    assert [d["id"] for d in r.json()["items"]] == [empty["id"], fish["id"]]
    assert r.json()["next_cursor"]


async def test_document_pagination_newest_first_without_overlap_or_gap(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    created = [await make_document(client, alice, filename=f"d{i}.txt") for i in range(7)]
    # 23 more inserted in one statement: identical created_at, so the
    # ordering must break ties (by id) to page correctly.
    await db.owner.execute(
        "INSERT INTO documents (user_id, filename, file_type, file_size) "
        "SELECT $1, 'same-' || g, 'text/plain', 1 FROM generate_series(1, 23) g",
        uuid.UUID(alice),
    )
    expected = await db.owner.fetch(
        "SELECT id FROM documents WHERE user_id = $1 ORDER BY created_at DESC, id DESC", uuid.UUID(alice)
    )
    expected_ids = [str(r["id"]) for r in expected]
    assert len(expected_ids) == 30
    # The newest (API-created, later transaction than... ) come in created_at order.
    default_page = (await client.get("/api/documents", headers=bearer(alice))).json()
    assert len(default_page["items"]) == 20  # default limit
    assert [d["id"] for d in default_page["items"]] == expected_ids[:20]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/documents", params=params, headers=bearer(alice))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 7
        seen.extend(d["id"] for d in page["items"])
        pages += 1
        if pages == 2:
            # Rows added while paging are newer: they must not shift later pages.
            await make_document(client, alice, filename="late.txt")
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == expected_ids, "pages overlapped, skipped or were out of order"
    assert pages == 5  # 30 rows / 7 per page
    assert {d["id"] for d in created} <= set(seen)
    # limit=100 returns everything on one page (31 now).
    r = await client.get("/api/documents", params={"limit": 100}, headers=bearer(alice))
    assert len(r.json()["items"]) == 31 and r.json()["next_cursor"] is None
    # An exact multiple: the last full page has no next cursor pointing at nothing.
    everything = await list_all(client, "/api/documents", bearer(alice), limit=31)
    assert len(everything) == 31
    # Pagination combines with filters.
    filtered = await list_all(client, "/api/documents", bearer(alice), limit=3, processing_status="pending")
    assert len(filtered) == 31 and len({d["id"] for d in filtered}) == 31


# --- chunks and search ------------------------------------------------------------


async def test_chunks_get_ordered_and_post_single_and_array(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice)
    # One object.
    r = await client.post(
        f"/api/documents/{doc['id']}/chunks",
        json={"chunk_index": 5, "content": "fifth", "section_title": "End"},
        headers=bearer(alice),
    )
    assert r.status_code == 201, r.text
    (single,) = r.json()["items"]
    assert single["chunk_index"] == 5 and single["content"] == "fifth" and single["section_title"] == "End"
    assert single["document_id"] == doc["id"]
    # An array, out of order.
    r = await client.post(
        f"/api/documents/{doc['id']}/chunks",
        json=[{"chunk_index": 3, "content": "third"}, {"chunk_index": 0, "content": "zeroth"},
              {"chunk_index": 1, "content": "first", "section_title": None}],
        headers=bearer(alice),
    )
    assert r.status_code == 201, r.text
    assert [c["chunk_index"] for c in r.json()["items"]] == [0, 1, 3]
    r = await client.get(f"/api/documents/{doc['id']}/chunks", headers=bearer(alice))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [c["chunk_index"] for c in items] == [0, 1, 3, 5]
    assert [c["content"] for c in items] == ["zeroth", "first", "third", "fifth"]
    assert all(c["document_id"] == doc["id"] for c in items)
    # Deleting the document takes its chunks with it.
    assert (await client.delete(f"/api/documents/{doc['id']}", headers=bearer(alice))).status_code == 204
    assert await db.owner.fetchval("SELECT count(*) FROM document_chunks") == 0
    assert_error(await client.get(f"/api/documents/{doc['id']}/chunks", headers=bearer(alice)), 404)


async def test_chunks_of_a_document_without_chunks(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice)
    r = await client.get(f"/api/documents/{doc['id']}/chunks", headers=bearer(alice))
    assert r.status_code == 200 and r.json() == {"items": []}


async def test_search_ranks_chunks_with_document_and_filename(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    a = await make_document(client, alice, filename="animals.txt")
    b = await make_document(client, alice, filename="pets.md")
    await make_chunks(client, alice, a["id"], [
        "The cat sat on the mat.",
        "Bananas are yellow.",
        "Cats, cats and more cats: a cat compendium.",
    ])
    await make_chunks(client, alice, b["id"], ["A dog and a cat became friends.", "Nothing relevant here."])
    r = await client.get("/api/search", params={"q": "cat"}, headers=bearer(alice))
    assert r.status_code == 200, r.text
    hits = r.json()["items"]
    assert len(hits) == 3
    ranks = [h["rank"] for h in hits]
    assert ranks == sorted(ranks, reverse=True)
    assert hits[0]["content"].startswith("Cats, cats")  # most occurrences first
    assert hits[0]["rank"] > hits[-1]["rank"]
    for hit in hits:
        assert set(hit) >= {"id", "document_id", "filename", "chunk_index", "content", "section_title", "rank"}
        assert "cat" in hit["content"].lower()
        assert hit["filename"] == {a["id"]: "animals.txt", b["id"]: "pets.md"}[hit["document_id"]]
    by_content = {h["content"]: h for h in hits}
    assert by_content["A dog and a cat became friends."]["document_id"] == b["id"]
    assert by_content["A dog and a cat became friends."]["chunk_index"] == 0
    # limit
    r = await client.get("/api/search", params={"q": "cat", "limit": 1}, headers=bearer(alice))
    assert [h["id"] for h in r.json()["items"]] == [hits[0]["id"]]
    # A phrase / and-query.
    r = await client.get("/api/search", params={"q": "dog cat"}, headers=bearer(alice))
    assert [h["content"] for h in r.json()["items"]] == ["A dog and a cat became friends."]
    r = await client.get("/api/search", params={"q": "zebra"}, headers=bearer(alice))
    assert r.status_code == 200 and r.json()["items"] == []


# --- agent requests and sessions --------------------------------------------------


async def test_agent_request_crud_and_status_filter(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post("/api/agent-requests", json={"agent_type": "create", "content": "write a poem"},
                          headers=bearer(alice))
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["user_id"] == alice and req["status"] == "pending" and req["progress"] == 0
    assert req["results"] is None and req["token_cost"] is None
    assert (await client.get(f"/api/agent-requests/{req['id']}", headers=bearer(alice))).json() == req

    r = await client.patch(f"/api/agent-requests/{req['id']}", json={"content": "write a sonnet", "agent_type": "edit"},
                           headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "write a sonnet" and r.json()["agent_type"] == "edit"

    other = await make_request(client, alice, agent_type="research")
    # The service executes it.
    r = await client.patch(
        f"/api/agent-requests/{other['id']}",
        json={"status": "completed", "progress": 1.0, "results": {"answer": [1, 2, {"k": "v"}]}, "token_cost": 321},
        headers=service(),
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert done["results"] == {"answer": [1, 2, {"k": "v"}]} and done["token_cost"] == 321
    assert (await client.get(f"/api/agent-requests/{other['id']}", headers=bearer(alice))).json() == done
    r = await client.patch(f"/api/agent-requests/{req['id']}", json={"status": "processing", "progress": 0.25},
                           headers=service())
    assert r.status_code == 200 and r.json()["progress"] == 0.25

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/api/agent-requests", params=params, headers=bearer(alice))
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert await ids() == [other["id"], req["id"]]
    assert await ids(status="completed") == [other["id"]]
    assert await ids(status="processing") == [req["id"]]
    assert await ids(status="pending") == []
    assert await ids(status="failed") == []

    r = await client.delete(f"/api/agent-requests/{req['id']}", headers=bearer(alice))
    assert r.status_code == 204
    assert await ids() == [other["id"]]
    assert_error(await client.get(f"/api/agent-requests/{req['id']}", headers=bearer(alice)), 404, "not_found")


async def test_service_role_creates_an_agent_request_with_service_fields(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post(
        "/api/agent-requests",
        json={"user_id": alice, "agent_type": "edit", "content": "c", "status": "failed", "progress": 0.5,
              "results": ["partial"], "token_cost": 0},
        headers=service(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["user_id"], body["status"], body["progress"], body["results"], body["token_cost"]) == (
        alice, "failed", 0.5, ["partial"], 0)


async def test_agent_session_crud(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r1 = await make_request(client, alice)
    r2 = await make_request(client, alice)
    r = await client.post("/api/agent-sessions", json={}, headers=bearer(alice))
    assert r.status_code == 201, r.text
    empty = r.json()
    assert empty["user_id"] == alice and empty["request_chain"] == [] and empty["context_state"] is None
    r = await client.post(
        "/api/agent-sessions",
        json={"request_chain": [r1["id"], r2["id"]], "context_state": {"turn": 2, "notes": ["a", None]}},
        headers=bearer(alice),
    )
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["request_chain"] == [r1["id"], r2["id"]]
    assert session["context_state"] == {"turn": 2, "notes": ["a", None]}
    assert (await client.get(f"/api/agent-sessions/{session['id']}", headers=bearer(alice))).json() == session
    stored = await db.owner.fetchval("SELECT request_chain::text FROM agent_sessions WHERE id = $1", uuid.UUID(session["id"]))
    assert stored == f'["{r1["id"]}", "{r2["id"]}"]'  # a JSON array of uuid strings, in order

    # Listing is "recently active first": sessions ordered by updated_at.
    listed = (await client.get("/api/agent-sessions", headers=bearer(alice))).json()["items"]
    assert [s["id"] for s in listed] == [session["id"], empty["id"]]
    r = await client.patch(f"/api/agent-sessions/{empty['id']}", json={"request_chain": [r2["id"]]},
                           headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert r.json()["request_chain"] == [r2["id"]] and r.json()["context_state"] is None
    listed = (await client.get("/api/agent-sessions", headers=bearer(alice))).json()["items"]
    assert [s["id"] for s in listed] == [empty["id"], session["id"]]
    r = await client.patch(f"/api/agent-sessions/{session['id']}", json={"context_state": None},
                           headers=bearer(alice))
    assert r.status_code == 200 and r.json()["context_state"] is None
    assert r.json()["request_chain"] == [r1["id"], r2["id"]]

    assert (await client.delete(f"/api/agent-sessions/{session['id']}", headers=bearer(alice))).status_code == 204
    assert_error(await client.get(f"/api/agent-sessions/{session['id']}", headers=bearer(alice)), 404)
    assert [s["id"] for s in (await client.get("/api/agent-sessions", headers=bearer(alice))).json()["items"]] == [empty["id"]]


# --- usage ------------------------------------------------------------------------


async def test_usage_events_post_by_service_and_list(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.post(
        "/api/usage-events",
        json={"user_id": alice, "event_type": "agent_request", "tokens_used": 150, "cost": 0.25,
              "metadata": {"model": "m1", "request": None}},
        headers=service(),
    )
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["user_id"] == alice and event["event_type"] == "agent_request"
    assert event["tokens_used"] == 150 and event["cost"] == 0.25 and event["metadata"] == {"model": "m1", "request": None}
    r = await client.get("/api/usage-events", headers=bearer(alice))
    assert r.status_code == 200 and r.json()["items"] == [event]
    # service_role sees it too, and can narrow to a user.
    r = await client.get("/api/usage-events", params={"user_id": alice}, headers=service())
    assert [e["id"] for e in r.json()["items"]] == [event["id"]]


async def _event_at(db: MigratedDB, user: str, event_type: str, at: datetime.datetime, tokens: int | None,
                    cost: float | None) -> str:
    return str(await db.owner.fetchval(
        "INSERT INTO usage_events (user_id, event_type, tokens_used, cost, created_at) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        uuid.UUID(user), event_type, tokens, cost, at,
    ))


async def test_usage_event_filters_and_summary(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    bob = await create_user(db.owner)
    day = datetime.datetime(2025, 3, 1, tzinfo=datetime.timezone.utc)
    hour = datetime.timedelta(hours=1)
    e1 = await _event_at(db, alice, "upload", day, 10, 1.0)
    e2 = await _event_at(db, alice, "query", day + hour, 100, 0.5)
    e3 = await _event_at(db, alice, "query", day + 2 * hour, 50, None)
    e4 = await _event_at(db, alice, "query", day + 3 * hour, None, 0.25)
    await _event_at(db, bob, "query", day + hour, 1000, 9.0)

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/api/usage-events", params=params, headers=bearer(alice))
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    assert await ids() == [e4, e3, e2, e1]
    assert await ids(event_type="query") == [e4, e3, e2]
    assert await ids(event_type="upload") == [e1]
    assert await ids(event_type="nothing") == []
    assert await ids(since=(day + hour).isoformat()) == [e4, e3, e2]  # since is inclusive
    assert await ids(until=(day + 2 * hour).isoformat()) == [e2, e1]  # until is exclusive
    assert await ids(since=(day + hour).isoformat(), until=(day + 3 * hour).isoformat(), event_type="query") == [e3, e2]
    assert await ids(since="2025-03-01T02:30:00+01:00") == [e4, e3]  # offsets honoured (= 01:30Z)

    r = await client.get("/api/usage/summary", headers=bearer(alice))
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["since"] is None and summary["until"] is None
    totals = {t["event_type"]: t for t in summary["totals"]}
    assert totals == {
        "query": {"event_type": "query", "events": 3, "tokens_used": 150, "cost": 0.75},
        "upload": {"event_type": "upload", "events": 1, "tokens_used": 10, "cost": 1.0},
    }
    r = await client.get("/api/usage/summary",
                         params={"since": (day + hour).isoformat(), "until": (day + 3 * hour).isoformat()},
                         headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert datetime.datetime.fromisoformat(r.json()["since"]) == day + hour
    assert datetime.datetime.fromisoformat(r.json()["until"]) == day + 3 * hour
    assert r.json()["totals"] == [{"event_type": "query", "events": 2, "tokens_used": 150, "cost": 0.5}]
    # service_role sums everyone, or one user.
    r = await client.get("/api/usage/summary", headers=service())
    totals = {t["event_type"]: t for t in r.json()["totals"]}
    assert totals["query"] == {"event_type": "query", "events": 4, "tokens_used": 1150, "cost": 9.75}
    r = await client.get("/api/usage/summary", params={"user_id": bob}, headers=service())
    assert r.json()["totals"] == [{"event_type": "query", "events": 1, "tokens_used": 1000, "cost": 9.0}]


# --- browsers and operations ------------------------------------------------------


async def test_cors_preflight_from_the_allowed_origin(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/documents",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed_headers = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    allowed_methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= allowed_methods
    # An actual request from that origin gets the CORS headers too.
    r = await client.get("/api/documents", headers={"Origin": ALLOWED_ORIGIN})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-request-id" in r.headers.get("access-control-expose-headers", "").lower()


async def test_cors_other_origin_not_allowed(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/documents",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.headers.get("access-control-allow-origin") != "https://evil.example"
    r = await client.get("/api/documents", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_cors_preflight_carries_a_request_id(client: httpx.AsyncClient) -> None:
    """The contract: *every* response carries X-Request-ID."""
    r = await client.options(
        "/api/documents",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET", "X-Request-ID": "pre-1"},
    )
    assert r.status_code == 200
    assert r.headers.get("x-request-id") == "pre-1"


async def test_request_id_echoed_when_sane(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for sane in ("abc-123", "req_01.HX:42", "x" * 128, str(uuid.uuid4())):
        r = await client.get("/api/documents", headers={**bearer(alice), "X-Request-ID": sane})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == sane
    # On errors too (401 from the request scope, 404 from the router, 422).
    r = await client.get("/api/documents", headers={"Authorization": "Bearer nope", "X-Request-ID": "err-1"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "err-1"
    r = await client.get("/nowhere", headers={"X-Request-ID": "err-2"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "err-2"
    r = await client.get("/api/documents?limit=0", headers={"X-Request-ID": "err-3"})
    assert r.status_code == 422 and r.headers["x-request-id"] == "err-3"
    r = await client.get("/health", headers={"X-Request-ID": "h-1"})
    assert r.headers["x-request-id"] == "h-1"


async def test_request_id_replaced_when_not_sane(client: httpx.AsyncClient) -> None:
    ids = set()
    for insane in ("x" * 500, "has space", "semi;colon", "quote\"d", "<script>", "ä-umlaut".encode()):
        r = await client.get("/api/documents", headers={"X-Request-ID": insane})
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        assert rid != insane and rid
        assert len(rid) <= 128 and " " not in rid
        ids.add(rid)
    assert len(ids) == 6  # a fresh id each time
    # No id sent: one is generated, different per request.
    a = (await client.get("/health")).headers["x-request-id"]
    b = (await client.get("/health")).headers["x-request-id"]
    assert a and b and a != b


async def test_request_id_with_newline_is_replaced(client: httpx.AsyncClient) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/health", "raw_path": b"/health", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"x-request-id", b"abc\ninjected: 1")],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80), "state": {},
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    ids = [v for k, v in start["headers"] if k.lower() == b"x-request-id"]
    assert len(ids) == 1
    assert b"\n" not in ids[0] and b"injected" not in ids[0]


async def test_method_not_allowed(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    r = await client.put("/api/documents", json={}, headers=bearer(alice))
    assert_error(r, 405, "method_not_allowed")
    assert set(a.strip() for a in r.headers["allow"].split(",")) >= {"GET", "POST"}
    r = await client.post(f"/api/documents/{uuid.uuid4()}", json={}, headers=bearer(alice))
    assert_error(r, 405)
    r = await client.delete("/api/profile", headers=bearer(alice))
    assert_error(r, 405)
    r = await client.patch("/api/usage-events", json={}, headers=service())
    assert_error(r, 405)


async def test_unknown_path_is_a_json_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nothing"), 404, "not_found")


async def test_one_access_log_line_per_request(db: MigratedDB, client: httpx.AsyncClient, caplog: Any) -> None:
    """id, method, path, status, duration and user id; never the token."""
    import json
    import logging

    alice = await create_user(db.owner)
    caplog.set_level(logging.INFO, logger="centrid.access")
    headers = bearer(alice)
    token = headers["Authorization"].split(" ", 1)[1]
    requests = [
        ("GET", "/api/documents", {**headers, "X-Request-ID": "log-ok"}, 200),
        ("POST", "/api/documents", {**headers, "X-Request-ID": "log-422"}, 422),
        ("GET", "/api/documents", {"Authorization": "Bearer " + token[:-2] + "xx", "X-Request-ID": "log-401"}, 401),
        ("GET", "/health", {"X-Request-ID": "log-health"}, 200),
        ("OPTIONS", "/api/documents", {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET",
                                       "X-Request-ID": "log-preflight"}, 200),
    ]
    for method, path, h, status in requests:
        r = await client.request(method, path, headers=h, json={} if method == "POST" else None)
        assert r.status_code == status, (method, path, r.text)
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "centrid.access"]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(line["request_id"], []).append(line)
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert token not in text and token.split(".")[2] not in text
    ok = by_id["log-ok"][0]
    assert (ok["method"], ok["path"], ok["status"], ok["user_id"]) == ("GET", "/api/documents", 200, alice)
    assert isinstance(ok["duration_ms"], (int, float))
    assert by_id["log-422"][0]["status"] == 422 and by_id["log-422"][0]["user_id"] == alice
    assert by_id["log-401"][0]["status"] == 401 and by_id["log-401"][0]["user_id"] is None
    assert by_id["log-health"][0]["status"] == 200
    missing = [rid for _, _, h, _ in requests if len(by_id.get(rid := h["X-Request-ID"], [])) != 1]
    assert not missing, f"requests without exactly one access log line: {missing}"
