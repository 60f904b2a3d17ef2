"""The bad-input matrix: every answer is the contract's error shape with the
right status, names the offending field where there is one, and stores
nothing. Never a 500."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.api_support import (
    DOC,
    app_client,
    assert_error,
    assert_names_field,
    make_chunks,
    make_document,
    make_request,
    make_session,
    service,
    table_snapshot,
)
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

MIB = 1024 * 1024


async def _fixture(db: MigratedDB, client: httpx.AsyncClient) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    alice = await create_user(db.owner, name="Alice")
    doc = await make_document(client, alice)
    await make_chunks(client, alice, doc["id"], ["zero", "one"])
    req = await make_request(client, alice)
    session = await make_session(client, alice)
    return alice, doc, req, session


def _write_targets(alice: str, doc: dict[str, Any], req: dict[str, Any], session: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    user = bearer(alice)
    return [
        ("POST", "/api/documents", user),
        ("PATCH", f"/api/documents/{doc['id']}", user),
        ("POST", f"/api/documents/{doc['id']}/chunks", user),
        ("POST", "/api/agent-requests", user),
        ("PATCH", f"/api/agent-requests/{req['id']}", user),
        ("POST", "/api/agent-sessions", user),
        ("PATCH", f"/api/agent-sessions/{session['id']}", user),
        ("PATCH", "/api/profile", user),
        ("PATCH", f"/api/profiles/{alice}", service()),
        ("POST", "/api/usage-events", service()),
    ]


async def test_malformed_json_is_400(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice, doc, req, session = await _fixture(db, client)
    before = await table_snapshot(db.owner)
    bodies = [b"{", b'{"filename": "a",', b"not json", b"", b"   ", b"{'filename': 'a'}", b"\xff\xfe\x00{",
              b'{"file_size": 1e400}', b"NaN", b'{"a": 1} trailing', b"[" * 2000 + b"]" * 2000]
    for method, path, headers in _write_targets(alice, doc, req, session):
        for body in bodies:
            r = await client.request(method, path, content=body,
                                     headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 400, (method, path, body[:20], r.status_code, r.text[:300])
            assert_error(r, 400, "bad_request")
    assert await table_snapshot(db.owner) == before


async def test_json_that_is_not_an_object_is_422(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice, doc, req, session = await _fixture(db, client)
    before = await table_snapshot(db.owner)
    for method, path, headers in _write_targets(alice, doc, req, session):
        for body in ([], [DOC], 42, "a string", None, True, 1.5):
            if path.endswith("/chunks") and isinstance(body, list):
                continue  # an array is a valid chunks body; covered below
            r = await client.request(method, path, content=json.dumps(body),
                                     headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 422, (method, path, body, r.status_code, r.text[:300])
            assert_error(r, 422, "validation_error")
            assert isinstance(r.json()["error"]["details"], list) and r.json()["error"]["details"]
    # An empty chunk array is not a batch.
    r = await client.post(f"/api/documents/{doc['id']}/chunks", json=[], headers=bearer(alice))
    assert_error(r, 422, "validation_error")
    # A list of non-objects neither.
    r = await client.post(f"/api/documents/{doc['id']}/chunks", json=[1, 2], headers=bearer(alice))
    assert_error(r, 422, "validation_error")
    assert await table_snapshot(db.owner) == before


async def test_field_errors_name_the_field(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice, doc, req, session = await _fixture(db, client)
    user = bearer(alice)
    chunks = f"/api/documents/{doc['id']}/chunks"
    cases: list[tuple[str, str, dict[str, str], Any, str]] = [
        # unknown fields (also columns no client writes)
        ("POST", "/api/documents", user, {**DOC, "bogus": 1}, "bogus"),
        ("POST", "/api/documents", user, {**DOC, "search_vector": "x"}, "search_vector"),
        ("POST", "/api/documents", user, {**DOC, "id": str(uuid.uuid4())}, "id"),
        ("POST", "/api/documents", user, {**DOC, "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"user_id": str(uuid.uuid4())}, "user_id"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ("POST", chunks, user, {"chunk_index": 7, "content": "x", "document_id": doc["id"]}, "document_id"),
        ("POST", "/api/agent-requests", user, {"agent_type": "edit", "content": "x", "priority": 1}, "priority"),
        ("PATCH", "/api/profile", user, {"nickname": "x"}, "nickname"),
        ("PATCH", "/api/profile", user, {"user_id": str(uuid.uuid4())}, "user_id"),
        ("POST", "/api/usage-events", service(), {"event_type": "x", "user_id": alice, "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        # missing required fields
        ("POST", "/api/documents", user, {"file_type": "t", "file_size": 1}, "filename"),
        ("POST", "/api/documents", user, {"filename": "f", "file_size": 1}, "file_type"),
        ("POST", "/api/documents", user, {"filename": "f", "file_type": "t"}, "file_size"),
        ("POST", chunks, user, {"content": "x"}, "chunk_index"),
        ("POST", "/api/agent-requests", user, {"content": "x"}, "agent_type"),
        ("POST", "/api/usage-events", service(), {"user_id": alice}, "event_type"),
        # wrong types
        ("POST", "/api/documents", user, {**DOC, "file_size": "10"}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": True}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": 10.5}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": [10]}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "filename": 123}, "filename"),
        ("POST", "/api/documents", user, {**DOC, "content_text": {"a": 1}}, "content_text"),
        ("POST", "/api/documents", user, {**DOC, "user_id": "not-a-uuid"}, "user_id"),
        ("POST", chunks, user, {"chunk_index": 1.5, "content": "x"}, "chunk_index"),
        ("POST", chunks, user, {"chunk_index": "3", "content": "x"}, "chunk_index"),
        ("POST", chunks, user, {"chunk_index": False, "content": "x"}, "chunk_index"),
        ("POST", "/api/agent-sessions", user, {"request_chain": ["not-a-uuid"]}, "request_chain"),
        ("POST", "/api/agent-sessions", user, {"request_chain": {"a": 1}}, "request_chain"),
        ("PATCH", f"/api/agent-sessions/{session['id']}", user, {"request_chain": "x"}, "request_chain"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "tokens_used": "5"}, "tokens_used"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "cost": "free"}, "cost"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"usage_count": "5"}, "usage_count"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"usage_count": 1.5}, "usage_count"),
        # out of range
        ("POST", "/api/documents", user, {**DOC, "file_size": 0}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": -1}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": 2**31}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": 2**64}, "file_size"),
        ("POST", "/api/documents", user, {**DOC, "file_size": -(2**70)}, "file_size"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"file_size": 0}, "file_size"),
        ("POST", chunks, user, {"chunk_index": -1, "content": "x"}, "chunk_index"),
        ("POST", chunks, user, {"chunk_index": 2**31, "content": "x"}, "chunk_index"),
        ("POST", "/api/agent-requests", service(), {"user_id": alice, "agent_type": "edit", "content": "x", "progress": 1.5}, "progress"),
        ("POST", "/api/agent-requests", service(), {"user_id": alice, "agent_type": "edit", "content": "x", "progress": -0.01}, "progress"),
        ("POST", "/api/agent-requests", service(), {"user_id": alice, "agent_type": "edit", "content": "x", "token_cost": -1}, "token_cost"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"progress": 1.5}, "progress"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"token_cost": -1}, "token_cost"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"token_cost": 2**31}, "token_cost"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"usage_count": -1}, "usage_count"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "tokens_used": -1}, "tokens_used"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "cost": -0.5}, "cost"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "cost": 1e39}, "cost"),  # > real
        # bad enum values
        ("POST", "/api/documents", user, {**DOC, "processing_status": "done"}, "processing_status"),
        ("POST", "/api/documents", user, {**DOC, "processing_status": "PENDING"}, "processing_status"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"processing_status": "done"}, "processing_status"),
        ("POST", "/api/agent-requests", user, {"agent_type": "x", "content": "x"}, "agent_type"),
        ("PATCH", f"/api/agent-requests/{req['id']}", user, {"agent_type": "x"}, "agent_type"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"status": "done"}, "status"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"plan_type": "gold"}, "plan_type"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"subscription_status": "paused"}, "subscription_status"),
        ("PATCH", "/api/profile", user, {"plan_type": "gold"}, "plan_type"),
        # NUL characters in text fields and in JSON values
        ("POST", "/api/documents", user, {**DOC, "filename": "a\u0000b"}, "filename"),
        ("POST", "/api/documents", user, {**DOC, "content_text": "text\u0000"}, "content_text"),
        ("POST", "/api/documents", user, {**DOC, "storage_path": "\u0000"}, "storage_path"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"file_type": "t\u0000"}, "file_type"),
        ("POST", chunks, user, {"chunk_index": 8, "content": "a\u0000"}, "content"),
        ("POST", chunks, user, {"chunk_index": 8, "content": "a", "section_title": "\u0000"}, "section_title"),
        ("POST", "/api/agent-requests", user, {"agent_type": "edit", "content": "x\u0000y"}, "content"),
        ("PATCH", "/api/profile", user, {"name": "A\u0000"}, "name"),
        ("POST", "/api/agent-sessions", user, {"context_state": {"k": "v\u0000"}}, "context_state"),
        ("POST", "/api/agent-sessions", user, {"context_state": {"k\u0000": 1}}, "context_state"),
        ("PATCH", f"/api/agent-sessions/{session['id']}", user, {"context_state": [[["\u0000"]]]}, "context_state"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"results": {"a": ["b", {"c": "\u0000"}]}}, "results"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x\u0000"}, "event_type"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": "x", "metadata": {"m": "\u0000"}}, "metadata"),
        # empty required text
        ("POST", "/api/documents", user, {**DOC, "filename": ""}, "filename"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"filename": ""}, "filename"),
        ("POST", "/api/documents", user, {**DOC, "file_type": ""}, "file_type"),
        ("POST", chunks, user, {"chunk_index": 9, "content": ""}, "content"),
        ("POST", "/api/agent-requests", user, {"agent_type": "edit", "content": ""}, "content"),
        ("POST", "/api/usage-events", service(), {"user_id": alice, "event_type": ""}, "event_type"),
        # a NOT NULL column set to null
        ("PATCH", f"/api/documents/{doc['id']}", user, {"filename": None}, "filename"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"file_type": None}, "file_type"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"file_size": None}, "file_size"),
        ("PATCH", f"/api/documents/{doc['id']}", user, {"processing_status": None}, "processing_status"),
        ("POST", "/api/documents", user, {**DOC, "filename": None}, "filename"),
        ("POST", "/api/documents", user, {**DOC, "processing_status": None}, "processing_status"),
        ("PATCH", f"/api/agent-requests/{req['id']}", user, {"agent_type": None}, "agent_type"),
        ("PATCH", f"/api/agent-requests/{req['id']}", user, {"content": None}, "content"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"status": None}, "status"),
        ("PATCH", f"/api/agent-requests/{req['id']}", service(), {"progress": None}, "progress"),
        ("PATCH", f"/api/agent-sessions/{session['id']}", user, {"request_chain": None}, "request_chain"),
        ("POST", "/api/agent-sessions", user, {"request_chain": None}, "request_chain"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"plan_type": None}, "plan_type"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"usage_count": None}, "usage_count"),
        ("PATCH", f"/api/profiles/{alice}", service(), {"subscription_status": None}, "subscription_status"),
    ]
    before = await table_snapshot(db.owner)
    wrong = []
    for method, path, headers, body, field in cases:
        r = await client.request(method, path, json=body, headers=headers)
        try:
            assert_names_field(r, field)
        except AssertionError as exc:
            wrong.append((method, path, body if len(repr(body)) < 120 else "...", r.status_code, str(exc)[:300]))
    assert await table_snapshot(db.owner) == before
    assert not wrong, "\n".join(map(repr, wrong))


async def test_limits_of_the_ranges_are_accepted(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """The positive controls for the range checks above."""
    alice = await create_user(db.owner)
    doc = await make_document(client, alice, file_size=2**31 - 1)
    assert doc["file_size"] == 2**31 - 1
    r = await client.post(f"/api/documents/{doc['id']}/chunks", json={"chunk_index": 0, "content": "x"},
                          headers=bearer(alice))
    assert r.status_code == 201
    r = await client.post("/api/agent-requests", headers=service(), json={
        "user_id": alice, "agent_type": "edit", "content": "x", "progress": 1, "token_cost": 2**31 - 1})
    assert r.status_code == 201, r.text
    r = await client.patch(f"/api/agent-requests/{r.json()['id']}", json={"progress": 0}, headers=service())
    assert r.status_code == 200 and r.json()["progress"] == 0


async def test_invalid_uuids_in_paths_are_404(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice, doc, req, session = await _fixture(db, client)
    before = await table_snapshot(db.owner)
    bad_ids = ["not-a-uuid", "123", doc["id"] + "x", doc["id"][:-1], "%00", "'%20OR%201=1", "..%2F..%2Fetc"]
    for bad in bad_ids:
        for method, template, body in (
            ("GET", "/api/documents/{}", None),
            ("PATCH", "/api/documents/{}", {"filename": "x"}),
            ("DELETE", "/api/documents/{}", None),
            ("GET", "/api/documents/{}/chunks", None),
            ("POST", "/api/documents/{}/chunks", {"chunk_index": 5, "content": "x"}),
            ("GET", "/api/agent-requests/{}", None),
            ("PATCH", "/api/agent-requests/{}", {"content": "x"}),
            ("DELETE", "/api/agent-requests/{}", None),
            ("GET", "/api/agent-sessions/{}", None),
            ("PATCH", "/api/agent-sessions/{}", {}),
            ("DELETE", "/api/agent-sessions/{}", None),
            ("GET", "/api/profiles/{}", None),
            ("PATCH", "/api/profiles/{}", {"name": "x"}),
        ):
            for headers in (bearer(alice), service()):
                r = await client.request(method, template.format(bad), json=body, headers=headers)
                assert r.status_code == 404, (method, template, bad, r.status_code, r.text[:200])
                assert_error(r, 404, "not_found")
    assert await table_snapshot(db.owner) == before


# --- body size ------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice, doc, req, session = await _fixture(db, client)
    before = await table_snapshot(db.owner)
    big = {**DOC, "content_text": "x" * (MIB + 10)}
    for method, path, headers in _write_targets(alice, doc, req, session):
        if path.endswith("/chunks"):
            continue  # chunk batches have their own, larger limit (below)
        r = await client.request(method, path, json=big, headers=headers)
        assert int(r.request.headers["content-length"]) > MIB
        assert_error(r, 413, "payload_too_large")
        assert r.json()["error"]["details"] == {"limit": MIB}
    # A chunk batch over its own (larger) limit too.
    chunks = [{"chunk_index": i, "content": "y" * 17000} for i in range(1000)]
    r = await client.post(f"/api/documents/{doc['id']}/chunks", json=chunks, headers=bearer(alice))
    assert_error(r, 413)
    assert r.json()["error"]["details"] == {"limit": 16 * MIB}
    assert await table_snapshot(db.owner) == before
    # Just under the limit is fine (the positive control).
    r = await client.post("/api/documents", json={**DOC, "content_text": "x" * (MIB - 200)}, headers=bearer(alice))
    assert r.status_code == 201, r.text[:200]


async def test_chunked_body_over_the_limit_without_content_length_is_413(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    before = await table_snapshot(db.owner)
    produced = 0

    async def stream(total: int) -> AsyncIterator[bytes]:
        nonlocal produced
        yield b'{"filename": "f", "file_type": "t", "file_size": 1, "content_text": "'
        piece = b"z" * 65536
        sent = 0
        while sent < total:
            produced += len(piece)
            sent += len(piece)
            yield piece
        yield b'"}'

    r = await client.post("/api/documents", content=stream(2 * MIB), headers={**bearer(alice), "Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_error(r, 413, "payload_too_large")
    assert await table_snapshot(db.owner) == before
    # A streamed body under the limit is accepted.
    r = await client.post("/api/documents", content=stream(65536 * 4), headers={**bearer(alice), "Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:200]


async def test_a_lying_small_content_length_cannot_smuggle_a_big_body(app_settings: Any, db: MigratedDB) -> None:
    """The limit counts the bytes received, not only the declared length."""
    cfg = dataclasses.replace(app_settings, max_body_bytes=1000)
    async with app_client(cfg) as (app, c):
        alice = await create_user(db.owner)
        before = await table_snapshot(db.owner)
        r = await c.post("/api/documents", json={**DOC, "content_text": "x" * 2000}, headers=bearer(alice))
        assert_error(r, 413)
        assert r.json()["error"]["details"] == {"limit": 1000}
        r = await c.post("/api/documents", json={**DOC, "content_text": "x" * 500}, headers=bearer(alice))
        assert r.status_code == 201

        # Declared 10 bytes, 2000 arrive: drive the app directly.
        body = b'{"filename":"f","file_type":"t","file_size":1,"content_text":"' + b"x" * 2000 + b'"}'
        sent: list[dict[str, Any]] = []
        parts = [body[:500], body[500:1500], body[1500:]]

        async def receive() -> dict[str, Any]:
            chunk = parts.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        token = bearer(alice)["Authorization"].encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/documents", "raw_path": b"/api/documents", "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {},
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                        (b"content-length", b"10"), (b"authorization", token)],
        }
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 413
        count = await db.owner.fetchval("SELECT count(*) FROM documents")
        assert count == len(before["documents"]) + 1


# --- query strings --------------------------------------------------------------------


HOSTILE = [
    "'", "''", '"', '"unterminated', "\\", "\\\\'", "a & | ! (", "!!!", "&", "|", "(", ")", "a:*", "a <-> b",
    "' OR 1=1 --", "'; DROP TABLE documents; --", "%", "_", "{}", "{0}", "$1", "😀", "\u202e", "-", "--", "or",
    "a OR OR b", '"" ""', "\t\n", " ", "x" * 1000, "x " * 499, "a&" * 400, "\u00ff\u00fe",
]


async def test_hostile_search_strings_never_500(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice, content_text="The cat sat on the mat")
    await make_chunks(client, alice, doc["id"], ["The cat sat on the mat", "A dog!"])
    before = await table_snapshot(db.owner)
    bad = []
    for path in ("/api/documents", "/api/search"):
        for q in HOSTILE + ["x" * 1001, "x" * 20000]:
            r = await client.get(path, params={"q": q}, headers=bearer(alice))
            if r.status_code == 200:
                assert isinstance(r.json()["items"], list)
            elif r.status_code == 422:
                assert_error(r, 422, "validation_error")
            else:
                bad.append((path, q[:30], r.status_code, r.text[:200]))
        # Too long is 422; NUL via %00 is 422; empty is 422.
        for raw in ("q=" + "x" * 1001, "q=a%00b", "q=%00", "q="):
            r = await client.get(f"{path}?{raw}", headers=bearer(alice))
            if r.status_code != 422:
                bad.append((path, raw[:30], r.status_code, r.text[:200]))
            else:
                assert_names_field(r, "q")
    r = await client.get("/api/search", headers=bearer(alice))
    assert_names_field(r, "q")
    assert not bad, bad
    assert await table_snapshot(db.owner) == before
    # Hostile syntax still finds what it should: quotes and operators are just words.
    r = await client.get("/api/search", params={"q": "'cat' & | ! ("}, headers=bearer(alice))
    assert r.status_code == 200 and [h["chunk_index"] for h in r.json()["items"]] == [0]


async def test_hostile_filter_values_never_500(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    await make_document(client, alice)
    bad = []
    cases = [
        ("/api/documents", "processing_status", ["done", "'", "%00", "pending%00", ""], 422),
        ("/api/agent-requests", "status", ["done", "'; --", "%00"], 422),
        ("/api/agent-requests", "agent_type", ["x", "%00"], 422),
        ("/api/usage-events", "event_type", ["%00", "a%00b", "x" * 201, ""], 422),
        ("/api/usage-events", "since", ["yesterday", "'", "2025-13-01", "%00", "1e10"], 422),
        ("/api/usage-events", "until", ["2025-01-01T25:00:00Z", "now()"], 422),
        ("/api/usage/summary", "since", ["yesterday", "%00", "2025-02-30"], 422),
        ("/api/usage/summary", "until", ["x"], 422),
        ("/api/usage/summary", "user_id", ["x", "%00"], 422),
        ("/api/documents", "user_id", ["x", "'", "%00"], 422),
        ("/api/agent-sessions", "user_id", ["1"], 422),
    ]
    for path, name, values, expected in cases:
        for value in values:
            r = await client.get(f"{path}?{name}={value}", headers=bearer(alice))
            if r.status_code != expected:
                bad.append((path, name, value[:30], r.status_code, r.text[:200]))
                continue
            assert_names_field(r, name)
    # Quotes and the like in a free-text filter are just values.
    for value in ("'", "\\", "a' OR '1'='1", "😀"):
        r = await client.get("/api/usage-events", params={"event_type": value}, headers=bearer(alice))
        if r.status_code != 200:
            bad.append(("/api/usage-events", "event_type", value, r.status_code, r.text[:200]))
    assert not bad, "\n".join(map(repr, bad))


async def test_extreme_timestamps_in_filters_are_200_or_422_naming_the_field(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """Valid ISO timestamps at the edge of Python's range: 200, or 422 naming
    the parameter (never a 500)."""
    alice = await create_user(db.owner)
    bad = []
    for value in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z",
                  "9999-12-31T23:59:59Z", "2025-01-01T00:00:00", "2025-01-01"):
        for path, name in (("/api/usage-events", "since"), ("/api/usage-events", "until"),
                           ("/api/usage/summary", "since"), ("/api/usage/summary", "until")):
            r = await client.get(path, params={name: value}, headers=bearer(alice))
            if r.status_code not in (200, 422):
                bad.append((path, name, value, r.status_code, r.text[:200]))
            elif r.status_code == 422:
                try:
                    assert_names_field(r, name)
                except AssertionError:
                    bad.append((path, name, value, r.status_code, r.text[:200]))
    assert not bad, "\n".join(map(repr, bad))


async def test_bad_limits_are_422(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    bad = []
    for path in ("/api/documents", "/api/agent-requests", "/api/agent-sessions", "/api/usage-events", "/api/search"):
        extra = "&q=cat" if path == "/api/search" else ""
        for limit in ("0", "101", "abc", "-1", "1.5", "", "1e2", "%00", "99999999999999999999999"):
            r = await client.get(f"{path}?limit={limit}{extra}", headers=bearer(alice))
            if r.status_code != 422:
                bad.append((path, limit, r.status_code))
                continue
            assert_names_field(r, "limit")
        for limit in ("1", "100"):
            r = await client.get(f"{path}?limit={limit}{extra}", headers=bearer(alice))
            assert r.status_code == 200, (path, limit, r.text)
    assert not bad, bad


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_bad_cursors_are_422(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for _ in range(3):
        await make_document(client, alice)
    good = (await client.get("/api/documents", params={"limit": 1}, headers=bearer(alice))).json()["next_cursor"]
    assert good
    rid = uuid.uuid4()
    cursors = [
        "!!!", "abc", "a b", "x" * 201, "%00", "'", "==", _b64(b"garbage"), _b64(b"\xff\xfe\xfd"),
        _b64(b"2025-01-01T00:00:00+00:00|not-a-uuid"), _b64(f"2025-01-01T00:00:00|{rid}".encode()),  # naive
        _b64(f"not-a-date|{rid}".encode()), _b64(f"|{rid}".encode()), _b64(b"2025-01-01T00:00:00+00:00"),
        good[:-3], good + "x",
        # Well formed, but at the edges of the timestamp range.
        _b64(f"0001-01-01T00:00:00+14:00|{rid}".encode()),
        _b64(f"9999-12-31T23:59:59-14:00|{rid}".encode()),
    ]
    bad = []
    for path in ("/api/documents", "/api/agent-requests", "/api/agent-sessions", "/api/usage-events"):
        for cursor in cursors:
            r = await client.get(f"{path}?cursor={cursor}", headers=bearer(alice))
            if r.status_code == 422:
                try:
                    assert_names_field(r, "cursor")
                except AssertionError:
                    bad.append((path, cursor[:40], r.status_code, r.text[:200]))
            else:
                bad.append((path, cursor[:40], r.status_code, r.text[:200]))
    assert not bad, "\n".join(map(repr, bad))
    # The good cursor works.
    r = await client.get("/api/documents", params={"limit": 1, "cursor": good}, headers=bearer(alice))
    assert r.status_code == 200 and len(r.json()["items"]) == 1


# --- chunks: conflicts and atomicity --------------------------------------------------


async def test_duplicate_chunk_index_is_409_and_the_batch_is_absent(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice)
    path = f"/api/documents/{doc['id']}/chunks"
    await make_chunks(client, alice, doc["id"], ["zero", "one"])
    before = await table_snapshot(db.owner)
    # Within one array.
    r = await client.post(path, json=[{"chunk_index": 5, "content": "a"}, {"chunk_index": 6, "content": "b"},
                                      {"chunk_index": 5, "content": "c"}], headers=bearer(alice))
    error = assert_error(r, 409, "conflict")
    assert any(d.get("field") == "chunk_index" for d in error["details"]), error
    # Against an existing chunk: the new indexes 7 and 8 must not be stored either.
    r = await client.post(path, json=[{"chunk_index": 7, "content": "a"}, {"chunk_index": 1, "content": "dup"},
                                      {"chunk_index": 8, "content": "b"}], headers=bearer(alice))
    assert_error(r, 409, "conflict")
    r = await client.post(path, json={"chunk_index": 0, "content": "dup"}, headers=bearer(alice))
    assert_error(r, 409, "conflict")
    assert await table_snapshot(db.owner) == before
    items = (await client.get(path, headers=bearer(alice))).json()["items"]
    assert [(c["chunk_index"], c["content"]) for c in items] == [(0, "zero"), (1, "one")]
    # The same index in another document is fine.
    other = await make_document(client, alice)
    assert (await client.post(f"/api/documents/{other['id']}/chunks", json={"chunk_index": 0, "content": "x"},
                              headers=bearer(alice))).status_code == 201


async def test_chunk_batch_with_one_invalid_item_is_422_and_none_stored(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    doc = await make_document(client, alice)
    path = f"/api/documents/{doc['id']}/chunks"
    before = await table_snapshot(db.owner)
    good = [{"chunk_index": i, "content": f"c{i}"} for i in range(5)]
    for broken, field in (
        ({"chunk_index": 10, "content": ""}, "content"),
        ({"chunk_index": -3, "content": "x"}, "chunk_index"),
        ({"chunk_index": 10}, "content"),
        ({"chunk_index": 10, "content": "x", "extra": 1}, "extra"),
        ({"chunk_index": 10, "content": "nul\u0000"}, "content"),
    ):
        r = await client.post(path, json=[*good[:2], broken, *good[2:]], headers=bearer(alice))
        assert_error(r, 422, "validation_error")
        fields = {d["field"] for d in r.json()["error"]["details"] if d.get("field")}
        assert any(f.startswith("2.") and f.endswith(field) or f.endswith("2." + field) for f in fields), fields
    # Over the batch size.
    r = await client.post(path, json=[{"chunk_index": i, "content": "x"} for i in range(1001)], headers=bearer(alice))
    assert_error(r, 422)
    assert await table_snapshot(db.owner) == before


async def test_json_nesting_never_500(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """Deeply nested (but valid) JSON values: stored or refused, never a 500."""
    alice = await create_user(db.owner)
    bad = []
    for depth in (50, 200, 300, 1000):
        body = '{"context_state": ' + "[" * depth + '"leaf"' + "]" * depth + "}"
        r = await client.post("/api/agent-sessions", content=body,
                              headers={**bearer(alice), "Content-Type": "application/json"})
        if r.status_code not in (201, 400, 422):
            bad.append((depth, r.status_code, r.text[:200]))
        elif r.status_code != 201:
            assert_error(r, r.status_code)
    assert not bad, bad
