"""Who may see and change what, over HTTP: cross-user denial, service-owned
fields, anon, and every kind of bad token."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.api_support import (
    DOC,
    DROP,
    TABLES,
    assert_error,
    auth,
    forge,
    make_chunks,
    make_document,
    make_request,
    make_session,
    make_usage_event,
    row_counts,
    service,
    table_snapshot,
    user_claims,
)
from tests.conftest import TEST_JWT_SECRET, MigratedDB
from tests.support import bearer, create_user

# The HS512 token in the bad-token matrix is signed with the (short) test secret on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@dataclass
class World:
    alice: str
    bob: str
    doc: dict[str, Any]  # Bob's
    chunks: list[dict[str, Any]]
    request: dict[str, Any]
    session: dict[str, Any]
    event: dict[str, Any]
    alice_doc: dict[str, Any]


async def _world(db: MigratedDB, client: httpx.AsyncClient) -> World:
    alice = await create_user(db.owner, name="Alice")
    bob = await create_user(db.owner, name="Bob")
    doc = await make_document(client, bob, content_text="secret zebra plans", filename="bob.txt")
    chunks = await make_chunks(client, bob, doc["id"], ["zebra stripes are secret", "more zebra"])
    request = await make_request(client, bob, content="bob's zebra request")
    session = await make_session(client, bob, request_chain=[request["id"]])
    event = await make_usage_event(client, bob, event_type="zebra")
    alice_doc = await make_document(client, alice, content_text="alice zebra notes", filename="alice.txt")
    await make_chunks(client, alice, alice_doc["id"], ["alice zebra chunk"])
    return World(alice, bob, doc, chunks, request, session, event, alice_doc)


# --- another user's rows ------------------------------------------------------------


async def test_another_users_rows_are_404_for_every_verb(db: MigratedDB, client: httpx.AsyncClient) -> None:
    w = await _world(db, client)
    before = await table_snapshot(db.owner)
    as_alice = bearer(w.alice)
    # (method, path, body, what the owner gets for the same request: the
    # positive control that the route exists and the row is really there).
    cases: list[tuple[str, str, Any, int]] = [
        ("GET", f"/api/documents/{w.doc['id']}", None, 200),
        ("PATCH", f"/api/documents/{w.doc['id']}", {"filename": "pwned.txt"}, 200),
        ("PATCH", f"/api/documents/{w.doc['id']}", {}, 200),
        ("DELETE", f"/api/documents/{w.doc['id']}", None, 204),
        ("GET", f"/api/documents/{w.doc['id']}/chunks", None, 200),
        ("POST", f"/api/documents/{w.doc['id']}/chunks", {"chunk_index": 99, "content": "injected"}, 201),
        ("POST", f"/api/documents/{w.doc['id']}/chunks", [{"chunk_index": 98, "content": "injected"}], 201),
        ("GET", f"/api/agent-requests/{w.request['id']}", None, 200),
        ("PATCH", f"/api/agent-requests/{w.request['id']}", {"content": "pwned"}, 200),
        ("PATCH", f"/api/agent-requests/{w.request['id']}", {}, 200),
        ("DELETE", f"/api/agent-requests/{w.request['id']}", None, 204),
        ("GET", f"/api/agent-sessions/{w.session['id']}", None, 200),
        ("PATCH", f"/api/agent-sessions/{w.session['id']}", {"context_state": {"pwned": True}}, 200),
        ("PATCH", f"/api/agent-sessions/{w.session['id']}", {}, 200),
        ("DELETE", f"/api/agent-sessions/{w.session['id']}", None, 204),
        ("GET", f"/api/profiles/{w.bob}", None, 200),
        ("PATCH", f"/api/profiles/{w.bob}", {"name": "pwned"}, 200),
        ("PATCH", f"/api/profiles/{w.bob}", {}, 200),
    ]
    for method, path, body, _ in cases:
        r = await client.request(method, path, json=body, headers=as_alice)
        error = assert_error(r, 404, "not_found")
        # Indistinguishable from a row that does not exist at all.
        missing = path.replace(w.doc["id"], str(uuid.uuid4())).replace(w.request["id"], str(uuid.uuid4()))
        missing = missing.replace(w.session["id"], str(uuid.uuid4())).replace(w.bob, str(uuid.uuid4()))
        r2 = await client.request(method, missing, json=body, headers=as_alice)
        assert r2.status_code == 404, (method, missing, r2.text)
        assert r2.json()["error"]["code"] == error["code"]
        assert r2.json()["error"]["message"] == error["message"], (method, path)
    assert await table_snapshot(db.owner) == before
    # Bob still has everything.
    assert (await client.get(f"/api/documents/{w.doc['id']}", headers=bearer(w.bob))).status_code == 200
    chunks = (await client.get(f"/api/documents/{w.doc['id']}/chunks", headers=bearer(w.bob))).json()["items"]
    assert [c["chunk_index"] for c in chunks] == [0, 1]
    # Positive controls: the owner's same requests succeed (deletes last), so
    # every 404 above is a denial, not a missing route or row.
    wrong = []
    for method, path, body, status in sorted(cases, key=lambda c: c[0] == "DELETE"):
        r = await client.request(method, path, json=body, headers=bearer(w.bob))
        if r.status_code != status:
            wrong.append((method, path, status, r.status_code, r.text[:200]))
    assert not wrong, f"the owner did not get the expected status: {wrong}"


async def test_another_users_rows_are_absent_from_lists_search_summary_and_hello(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    w = await _world(db, client)
    as_alice = bearer(w.alice)
    for path in ("/api/documents", "/api/agent-requests", "/api/agent-sessions", "/api/usage-events"):
        for params in ({}, {"user_id": w.bob}, {"limit": 100}):
            r = await client.get(path, params=params, headers=as_alice)
            assert r.status_code == 200, r.text
            assert all(item["user_id"] == w.alice for item in r.json()["items"]), (path, params, r.text)
            if "user_id" in params:
                assert r.json()["items"] == [], (path, r.text)
    docs = (await client.get("/api/documents", params={"q": "zebra"}, headers=as_alice)).json()["items"]
    assert [d["id"] for d in docs] == [w.alice_doc["id"]]
    r = await client.get("/api/documents", params={"processing_status": "pending"}, headers=as_alice)
    assert [d["id"] for d in r.json()["items"]] == [w.alice_doc["id"]]
    r = await client.get("/api/agent-requests", params={"status": "pending"}, headers=as_alice)
    assert r.json()["items"] == []
    r = await client.get("/api/usage-events", params={"event_type": "zebra"}, headers=as_alice)
    assert r.json()["items"] == []
    hits = (await client.get("/api/search", params={"q": "zebra"}, headers=as_alice)).json()["items"]
    assert [h["document_id"] for h in hits] == [w.alice_doc["id"]]
    assert all(h["filename"] == "alice.txt" for h in hits)
    summary = (await client.get("/api/usage/summary", headers=as_alice)).json()
    assert summary["totals"] == []
    summary = (await client.get("/api/usage/summary", params={"user_id": w.bob}, headers=as_alice)).json()
    assert summary["totals"] == []
    hello = (await client.get("/hello", headers=as_alice)).json()["visible_rows"]
    assert hello == {"user_profiles": 1, "documents": 1, "document_chunks": 1, "agent_requests": 0,
                     "agent_sessions": 0, "usage_events": 0}
    # The same lists as Bob do contain his rows (the denial above is not vacuous).
    bob_hits = (await client.get("/api/search", params={"q": "zebra"}, headers=bearer(w.bob))).json()["items"]
    assert {h["document_id"] for h in bob_hits} == {w.doc["id"]} and len(bob_hits) == 2
    bob_summary = (await client.get("/api/usage/summary", headers=bearer(w.bob))).json()["totals"]
    assert [t["event_type"] for t in bob_summary] == ["zebra"]
    for path, row in (("/api/documents", w.doc), ("/api/agent-requests", w.request),
                      ("/api/agent-sessions", w.session), ("/api/usage-events", w.event)):
        r = await client.get(path, params={"user_id": w.bob}, headers=bearer(w.bob))
        assert r.status_code == 200 and row["id"] in [i["id"] for i in r.json()["items"]], (path, r.text)


async def test_a_user_cannot_move_a_row_to_another_user(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    bob = await create_user(db.owner)
    doc = await make_document(client, alice)
    before = await table_snapshot(db.owner)
    # user_id is not a patchable field at all.
    r = await client.patch(f"/api/documents/{doc['id']}", json={"user_id": bob}, headers=bearer(alice))
    assert_error(r, 422)
    r = await client.patch(f"/api/agent-sessions/{uuid.uuid4()}", json={"user_id": bob}, headers=bearer(alice))
    assert_error(r, 422)
    assert await table_snapshot(db.owner) == before


# --- body user_id -------------------------------------------------------------------


async def test_body_user_id_is_never_honoured_for_a_user(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    bob = await create_user(db.owner)
    before = await row_counts(db.owner)
    posts: list[tuple[str, dict[str, Any]]] = [
        ("/api/documents", {**DOC, "user_id": bob}),
        ("/api/agent-requests", {"user_id": bob, "agent_type": "edit", "content": "x"}),
        ("/api/agent-sessions", {"user_id": bob}),
    ]
    for path, body in posts:
        r = await client.post(path, json=body, headers=bearer(alice))
        assert_error(r, 403, "forbidden")
        assert await row_counts(db.owner) == before, path
    assert (await client.get("/api/documents", headers=bearer(bob))).json()["items"] == []
    # With her own id it is fine.
    for path, body in posts:
        r = await client.post(path, json={**body, "user_id": alice}, headers=bearer(alice))
        assert r.status_code == 201, (path, r.text)
        assert r.json()["user_id"] == alice
    after = await row_counts(db.owner)
    assert after["documents"] == before["documents"] + 1
    assert after["agent_requests"] == before["agent_requests"] + 1
    assert after["agent_sessions"] == before["agent_sessions"] + 1


# --- service-owned fields ----------------------------------------------------------


async def test_service_owned_profile_fields_are_403_for_a_user(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    before = await table_snapshot(db.owner)
    bodies: list[dict[str, Any]] = [
        {"plan_type": "enterprise"},
        {"usage_count": 0},
        {"usage_count": 1000},
        {"subscription_status": "cancelled"},
        {"name": "Renamed", "plan_type": "pro"},  # the allowed field does not slip through either
        {"name": "Renamed", "usage_count": 5},
    ]
    for body in bodies:
        for path in ("/api/profile", f"/api/profiles/{alice}"):
            r = await client.patch(path, json=body, headers=bearer(alice))
            assert_error(r, 403, "forbidden")
            assert await table_snapshot(db.owner) == before, (path, body)
    profile = (await client.get("/api/profile", headers=bearer(alice))).json()
    assert (profile["name"], profile["plan_type"], profile["usage_count"], profile["subscription_status"]) == (
        "Alice", "free", 0, "active")


async def test_service_owned_agent_request_fields_are_403_for_a_user(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    req = await make_request(client, alice)
    before = await table_snapshot(db.owner)
    service_fields: list[dict[str, Any]] = [
        {"status": "completed"},
        {"status": "pending"},  # even the current value
        {"progress": 0.5},
        {"results": {"answer": 42}},
        {"results": None},
        {"token_cost": 0},
        {"token_cost": 1000},
    ]
    for fields in service_fields:
        r = await client.post("/api/agent-requests", json={"agent_type": "create", "content": "c", **fields},
                              headers=bearer(alice))
        assert_error(r, 403, "forbidden")
        r = await client.patch(f"/api/agent-requests/{req['id']}", json={"content": "changed", **fields},
                               headers=bearer(alice))
        assert_error(r, 403, "forbidden")
        r = await client.patch(f"/api/agent-requests/{req['id']}", json=fields, headers=bearer(alice))
        assert_error(r, 403, "forbidden")
        assert await table_snapshot(db.owner) == before, fields


async def test_usage_events_are_written_by_the_service_only(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    before = await row_counts(db.owner)
    for body in ({"event_type": "free_tokens", "tokens_used": 1}, {"user_id": alice, "event_type": "x"}):
        r = await client.post("/api/usage-events", json=body, headers=bearer(alice))
        assert_error(r, 403, "forbidden")
    assert_error(await client.post("/api/usage-events", json={"event_type": "x", "user_id": alice}), 401)
    assert await row_counts(db.owner) == before
    # Nor can anyone change or delete one.
    event = await make_usage_event(client, alice)
    for headers in (bearer(alice), service()):
        r = await client.patch(f"/api/usage-events/{event['id']}", json={"cost": 0}, headers=headers)
        assert r.status_code in (404, 405), r.text
        r = await client.delete(f"/api/usage-events/{event['id']}", headers=headers)
        assert r.status_code in (404, 405), r.text
    assert await db.owner.fetchval("SELECT cost FROM usage_events WHERE id = $1", uuid.UUID(event["id"])) == 0.5


# --- anon ---------------------------------------------------------------------------


async def test_anon_sees_nothing_and_cannot_write(db: MigratedDB, client: httpx.AsyncClient) -> None:
    w = await _world(db, client)
    for path in ("/api/documents", "/api/agent-requests", "/api/agent-sessions", "/api/usage-events"):
        r = await client.get(path, params={"user_id": w.bob})
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, (path, r.text)
        r = await client.get(path)
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, (path, r.text)
    r = await client.get("/api/search", params={"q": "zebra"})
    assert r.status_code == 200 and r.json()["items"] == []
    assert (await client.get("/api/usage/summary")).json()["totals"] == []
    assert all(v == 0 for v in (await client.get("/hello")).json()["visible_rows"].values())
    for path in (f"/api/documents/{w.doc['id']}", f"/api/documents/{w.doc['id']}/chunks",
                 f"/api/agent-requests/{w.request['id']}", f"/api/agent-sessions/{w.session['id']}"):
        assert_error(await client.get(path), 404)
    r = await client.get(f"/api/profiles/{w.bob}")
    assert r.status_code in (401, 404), r.text
    assert_error(await client.get("/api/profile"), 401, "unauthorized")

    before = await table_snapshot(db.owner)
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/api/documents", DOC),
        ("POST", "/api/documents", {**DOC, "user_id": w.bob}),
        ("PATCH", f"/api/documents/{w.doc['id']}", {"filename": "x"}),
        ("DELETE", f"/api/documents/{w.doc['id']}", None),
        ("POST", "/api/agent-requests", {"agent_type": "edit", "content": "x", "user_id": w.bob}),
        ("PATCH", f"/api/agent-requests/{w.request['id']}", {"content": "x"}),
        ("DELETE", f"/api/agent-requests/{w.request['id']}", None),
        ("POST", "/api/agent-sessions", {"user_id": w.bob}),
        ("PATCH", f"/api/agent-sessions/{w.session['id']}", {"request_chain": []}),
        ("DELETE", f"/api/agent-sessions/{w.session['id']}", None),
        ("POST", "/api/usage-events", {"user_id": w.bob, "event_type": "x"}),
        ("PATCH", "/api/profile", {"name": "x"}),
        ("PATCH", f"/api/profiles/{w.bob}", {"name": "x"}),
        ("POST", f"/api/documents/{w.doc['id']}/chunks", {"chunk_index": 50, "content": "x"}),
    ]
    failures = []
    for method, path, body in writes:
        r = await client.request(method, path, json=body)
        if r.status_code != 401:
            failures.append((method, path, r.status_code))
        else:
            assert_error(r, 401, "unauthorized")
    assert await table_snapshot(db.owner) == before
    assert not failures, f"anon writes not answered 401: {failures}"


async def test_an_anon_token_is_the_same_as_no_token(db: MigratedDB, client: httpx.AsyncClient) -> None:
    w = await _world(db, client)
    anon = bearer(None, role="anon")
    hello = (await client.get("/hello", headers=anon)).json()
    assert hello["role"] == "anon" and all(v == 0 for v in hello["visible_rows"].values())
    assert (await client.get("/api/documents", headers=anon)).json()["items"] == []
    before = await row_counts(db.owner)
    assert_error(await client.post("/api/documents", json=DOC, headers=anon), 401)
    assert_error(await client.post("/api/documents", json={**DOC, "user_id": w.bob}, headers=anon), 401)
    assert await row_counts(db.owner) == before


# --- tokens -------------------------------------------------------------------------


def _bad_tokens(user: str) -> dict[str, str]:
    """name -> Authorization header value."""
    now = int(time.time())
    good = user_claims(user)
    return {
        "alg none": "Bearer " + forge(good, alg="none", sign_with=None),
        "alg none, signed": "Bearer " + forge(good, alg="none"),
        "alg NONE unsigned": "Bearer " + forge(good, alg="NONE", sign_with=None),
        "wrong secret": "Bearer " + jwt.encode(good, "another-secret-of-sufficient-length-0123456789", algorithm="HS256"),
        "HS512": "Bearer " + jwt.encode(good, TEST_JWT_SECRET, algorithm="HS512"),
        "HS384": "Bearer " + jwt.encode(good, TEST_JWT_SECRET, algorithm="HS384"),
        "RS256 header, HMAC signature": "Bearer " + forge(good, alg="RS256"),
        "ES256 header": "Bearer " + forge(good, alg="ES256"),
        "tampered payload": "Bearer " + _tamper(jwt.encode(good, TEST_JWT_SECRET, algorithm="HS256"), user),
        "expired": "Bearer " + jwt.encode(user_claims(user, exp=now - 120), TEST_JWT_SECRET, algorithm="HS256"),
        "missing exp": "Bearer " + jwt.encode(user_claims(user, exp=DROP), TEST_JWT_SECRET, algorithm="HS256"),
        "exp not a number": "Bearer " + jwt.encode(user_claims(user, exp="tomorrow"), TEST_JWT_SECRET, algorithm="HS256"),
        "not yet valid": "Bearer " + jwt.encode(user_claims(user, nbf=now + 3600), TEST_JWT_SECRET, algorithm="HS256"),
        "missing sub": "Bearer " + jwt.encode(user_claims(None), TEST_JWT_SECRET, algorithm="HS256"),
        "non-UUID sub": "Bearer " + jwt.encode(user_claims("alice"), TEST_JWT_SECRET, algorithm="HS256"),
        "integer sub": "Bearer " + jwt.encode({**user_claims(None), "sub": 12345}, TEST_JWT_SECRET, algorithm="HS256"),
        "empty sub": "Bearer " + jwt.encode(user_claims(""), TEST_JWT_SECRET, algorithm="HS256"),
        "aud anon": "Bearer " + jwt.encode(user_claims(user, aud="anon"), TEST_JWT_SECRET, algorithm="HS256"),
        "aud other": "Bearer " + jwt.encode(user_claims(user, aud="https://other.example"), TEST_JWT_SECRET, algorithm="HS256"),
        "missing aud": "Bearer " + jwt.encode(user_claims(user, aud=DROP), TEST_JWT_SECRET, algorithm="HS256"),
        "role postgres": "Bearer " + jwt.encode(user_claims(user, role="postgres"), TEST_JWT_SECRET, algorithm="HS256"),
        "role supabase_admin": "Bearer " + jwt.encode(user_claims(user, role="supabase_admin"), TEST_JWT_SECRET, algorithm="HS256"),
        "role centrid_admin": "Bearer " + jwt.encode(user_claims(user, role="centrid_admin"), TEST_JWT_SECRET, algorithm="HS256"),
        "role missing": "Bearer " + jwt.encode(user_claims(user, role=DROP), TEST_JWT_SECRET, algorithm="HS256"),
        "role list": "Bearer " + jwt.encode(user_claims(user, role=["authenticated"]), TEST_JWT_SECRET, algorithm="HS256"),
        "service_role with non-UUID sub": "Bearer " + jwt.encode(
            {"role": "service_role", "sub": "svc", "exp": now + 600}, TEST_JWT_SECRET, algorithm="HS256"),
        "service_role expired": "Bearer " + jwt.encode(
            {"role": "service_role", "exp": now - 120}, TEST_JWT_SECRET, algorithm="HS256"),
        "service_role wrong secret": "Bearer " + jwt.encode(
            {"role": "service_role", "exp": now + 600}, "x" * 40, algorithm="HS256"),
        "garbage": "Bearer not.a.jwt",
        "garbage no dots": "Bearer garbage",
        "two tokens": "Bearer " + jwt.encode(good, TEST_JWT_SECRET, algorithm="HS256") + " extra",
        "Basic": "Basic xyz",
        "Basic with a valid token": "Basic " + jwt.encode(good, TEST_JWT_SECRET, algorithm="HS256"),
        "Bearer empty": "Bearer ",
        "Bearer alone": "Bearer",
        "empty header": "",
        "token without scheme": jwt.encode(good, TEST_JWT_SECRET, algorithm="HS256"),
    }


def _tamper(token: str, user: str) -> str:
    head, _, rest = token.partition(".")
    _, _, sig = rest.partition(".")
    other = forge(user_claims(str(uuid.uuid4())), secret="whatever")
    return head + "." + other.split(".")[1] + "." + sig


async def test_bad_tokens_are_401_and_nothing_is_read_or_written(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    await make_document(client, alice)
    before = await table_snapshot(db.owner)
    wrong: list[tuple[str, str, int]] = []
    for name, header in _bad_tokens(alice).items():
        headers = {"Authorization": header}
        for method, path, body in (
            ("POST", "/api/documents", DOC),
            ("GET", "/api/documents", None),
            ("GET", "/hello", None),
            ("POST", "/api/usage-events", {"user_id": alice, "event_type": "x"}),
        ):
            r = await client.request(method, path, json=body, headers=headers)
            if r.status_code != 401:
                wrong.append((name, f"{method} {path}", r.status_code))
                continue
            assert_error(r, 401, "unauthorized")
            assert "alice" not in r.text.lower() or name != "non-UUID sub"
    assert not wrong, f"bad tokens not refused with 401: {wrong}"
    assert await table_snapshot(db.owner) == before


async def test_bad_token_error_never_echoes_the_token(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    token = jwt.encode(user_claims(alice, exp=int(time.time()) - 60), TEST_JWT_SECRET, algorithm="HS256")
    r = await client.get("/api/documents", headers=auth(token))
    assert_error(r, 401)
    assert token not in r.text and token.split(".")[2] not in r.text


@pytest.mark.parametrize("role", ["authenticated", "service_role"])
async def test_a_token_signed_by_the_right_secret_works(db: MigratedDB, client: httpx.AsyncClient, role: str) -> None:
    """The positive control for the bad-token matrix: forge() and jwt.encode
    with the right secret and claims are accepted."""
    alice = await create_user(db.owner)
    claims = user_claims(alice) if role == "authenticated" else {"role": "service_role", "exp": int(time.time()) + 60}
    for token in (forge(claims), jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")):
        r = await client.get("/hello", headers=auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["role"] == role
    # aud may be a list containing "authenticated", as Supabase allows.
    if role == "authenticated":
        token = jwt.encode(user_claims(alice, aud=["authenticated", "x"]), TEST_JWT_SECRET, algorithm="HS256")
        assert (await client.get("/hello", headers=auth(token))).json()["user_id"] == alice


async def test_service_role_without_sub(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner, name="Alice")
    token = jwt.encode({"role": "service_role", "iss": "supabase", "exp": int(time.time()) + 60},
                       TEST_JWT_SECRET, algorithm="HS256")
    r = await client.get(f"/api/profiles/{alice}", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Alice"
    r = await client.post("/api/documents", json={**DOC, "user_id": alice}, headers=auth(token))
    assert r.status_code == 201, r.text
    # Without a user_id there is no owner: a validation error, not a 500.
    r = await client.post("/api/documents", json=DOC, headers=auth(token))
    assert_error(r, 422)
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 1


async def test_token_for_a_user_that_does_not_exist(db: MigratedDB, client: httpx.AsyncClient) -> None:
    ghost = str(uuid.uuid4())
    r = await client.get("/api/documents", headers=bearer(ghost))
    assert r.status_code == 200 and r.json()["items"] == []
    assert_error(await client.get("/api/profile", headers=bearer(ghost)), 404)
    # Writing for a user that does not exist fails cleanly (foreign key), not 500.
    r = await client.post("/api/documents", json=DOC, headers=bearer(ghost))
    assert_error(r, 422)
    counts = await row_counts(db.owner)
    assert counts == {t: 0 for t in TABLES}


async def test_admin_api_needs_its_own_login_whatever_the_token(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """/admin runs as the admin role, so only Piccolo's session login may open it:
    a bearer token (even service_role) or none gets no rows."""
    alice = await create_user(db.owner)
    await make_document(client, alice, filename="admin-secret.txt")
    page = await client.get("/admin/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/admin/api/tables/", "/admin/api/tables/documents/", "/admin/api/tables/documents/?__readable=true",
                 "/admin/api/tables/user_profiles/", "/admin/api/user/"):
        for headers in ({}, bearer(alice), service()):
            r = await client.get(path, headers=headers)
            assert r.status_code in (401, 403), (path, r.status_code, r.text[:200])
            assert "admin-secret" not in r.text and alice not in r.text
    before = await row_counts(db.owner)
    r = await client.post("/admin/api/tables/documents/", json={**DOC, "user_id": alice}, headers=service())
    assert r.status_code in (401, 403), r.text[:200]
    assert await row_counts(db.owner) == before


async def test_a_bad_token_is_refused_before_the_database_is_touched(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """With no database reachable, a bad token is still a 401 (not a 503):
    it never got as far as taking a connection."""
    from piccolo_conf import DB

    alice = await create_user(db.owner)
    await DB.close_connection_pool()
    for header in (_bad_tokens(alice)["wrong secret"], _bad_tokens(alice)["expired"], "Basic xyz"):
        assert_error(await client.get("/api/documents", headers={"Authorization": header}), 401, "unauthorized")
        assert_error(await client.post("/api/documents", json=DOC, headers={"Authorization": header}), 401)
    # The control: a good token does need the database.
    assert_error(await client.get("/api/documents", headers=bearer(alice)), 503, "database_unavailable")
