"""Helpers shared by the HTTP-level API tests (test_api_*.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from centrid.request.buffering import replay_receive
from tests.conftest import TEST_JWT_SECRET
from tests.support import SIX_TABLES, bearer

TABLES = SIX_TABLES

ALLOWED_ORIGIN = "https://app.example.test"


def service() -> dict[str, str]:
    """A service_role token as Supabase's service key: no `sub`."""
    return bearer(None, role="service_role")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def detail_fields(response: httpx.Response) -> set[str]:
    """The field names a 422 names in its per-field details."""
    details = response.json()["error"]["details"]
    assert isinstance(details, list) and details, f"422 without per-field details: {response.text}"
    return {d["field"] for d in details if d.get("field")}


def assert_names_field(response: httpx.Response, field: str) -> None:
    error = assert_error(response, 422, "validation_error")
    fields = detail_fields(response)
    assert any(f == field or f.endswith("." + field) or f.startswith(field + ".") for f in fields), (
        field,
        error,
    )


async def row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Every table's row count, as the owner sees them (everything)."""
    sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}") AS "{t}"' for t in TABLES)
    record = await conn.fetchrow(sql)
    assert record is not None
    return {k: int(v) for k, v in dict(record).items()}


async def table_snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Full contents of the six tables (owner's view), to prove nothing changed."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    for table in TABLES:
        rows = await conn.fetch(f'SELECT * FROM "{table}" ORDER BY id')
        snapshot[table] = [tuple(r.values()) for r in rows]
    return snapshot


DOC = {"filename": "notes.txt", "file_type": "text/plain", "file_size": 10}


async def make_document(client: httpx.AsyncClient, user: str, **fields: Any) -> dict[str, Any]:
    body = {**DOC, **fields}
    r = await client.post("/api/documents", json=body, headers=bearer(user))
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def make_chunks(client: httpx.AsyncClient, user: str, document_id: str, contents: list[str]) -> list[dict[str, Any]]:
    body = [{"chunk_index": i, "content": c} for i, c in enumerate(contents)]
    r = await client.post(f"/api/documents/{document_id}/chunks", json=body, headers=bearer(user))
    assert r.status_code == 201, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def make_request(client: httpx.AsyncClient, user: str, **fields: Any) -> dict[str, Any]:
    body = {"agent_type": "research", "content": "find cats", **fields}
    r = await client.post("/api/agent-requests", json=body, headers=bearer(user))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def make_session(client: httpx.AsyncClient, user: str, **fields: Any) -> dict[str, Any]:
    r = await client.post("/api/agent-sessions", json=fields, headers=bearer(user))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def make_usage_event(client: httpx.AsyncClient, user: str, **fields: Any) -> dict[str, Any]:
    body = {"user_id": user, "event_type": "tokens", "tokens_used": 10, "cost": 0.5, **fields}
    r = await client.post("/api/usage-events", json=body, headers=service())
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def list_all(client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int = 100, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor to the end of a list, as a client would.

    Fails on a dangling cursor instead of following it silently: a page
    that carries a next_cursor must be full, and the page it leads to must
    not be empty (a last page that is exactly full has no cursor). Only for
    lists nothing deletes from while they are read."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        r = await client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit, f"{path}: {len(page['items'])} items for limit={limit}"
        if cursor is not None and not page["items"]:
            raise AssertionError(f"{path}: next_cursor led to an empty page (a dangling cursor after {len(items)} items)")
        if page["next_cursor"] is not None and len(page["items"]) < limit:
            raise AssertionError(f"{path}: next_cursor on a page of {len(page['items'])} < limit={limit} items")
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


# --- forged tokens ------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(
    claims: dict[str, Any],
    *,
    alg: str = "HS256",
    secret: str = TEST_JWT_SECRET,
    sign_with: str | None = "sha256",
    header: dict[str, Any] | None = None,
) -> str:
    """A JWT built by hand, so the header's `alg` can lie about the signature
    (e.g. "RS256" or "none" while signed, or not signed, with HMAC)."""
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = _b64(json.dumps(head).encode()) + "." + _b64(json.dumps(claims).encode())
    if sign_with is None:
        return signing_input + "."
    digest = hmac.new(secret.encode(), signing_input.encode(), getattr(hashlib, sign_with)).digest()
    return signing_input + "." + _b64(digest)


def user_claims(sub: str | None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600}
    if sub is not None:
        claims["sub"] = sub
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not _DROP}


_DROP = object()
DROP: Any = _DROP  # pass as a claim value to leave the claim out


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def random_id() -> str:
    return str(uuid.uuid4())


# --- a client over an app built from given settings ------------------------------


@asynccontextmanager
async def app_client(cfg: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Same as conftest's `client`, for tests that need other settings."""
    from centrid.api.app import create_app

    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def centrid_backends(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The app pool's connections to this test's database."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT pid, state, wait_event_type, query FROM pg_stat_activity "
        "WHERE application_name = 'centrid' AND datname = current_database()"
    )
    return rows


async def seed_callers(
    client: httpx.AsyncClient, owner: asyncpg.Connection, *, users: int = 4, documents: int = 3, chunks: bool = False
) -> tuple[list[str], dict[str, list[str]]]:
    """Users named user0..userN, each with `documents` documents (content
    "shared words owner<id>"), optionally one chunk each, and one agent
    request, all created through the API as their owner."""
    from tests.support import create_user

    ids = [await create_user(owner, name=f"user{i}") for i in range(users)]
    docs: dict[str, list[str]] = {u: [] for u in ids}
    for u in ids:
        for i in range(documents):
            r = await client.post(
                "/api/documents",
                json={**DOC, "filename": f"{u[:8]}-{i}.txt", "content_text": f"shared words owner{u[:8]}"},
                headers=bearer(u),
            )
            assert r.status_code == 201, r.text
            docs[u].append(r.json()["id"])
            if chunks:
                r = await client.post(
                    f"/api/documents/{docs[u][-1]}/chunks",
                    json=[{"chunk_index": 0, "content": "first"}],
                    headers=bearer(u),
                )
                assert r.status_code == 201, r.text
        r = await client.post("/api/agent-requests", json={"agent_type": "edit", "content": "c"}, headers=bearer(u))
        assert r.status_code == 201, r.text
    return ids, docs


def assert_only_callers_rows(caller: str | None, items: list[dict[str, Any]], what: str) -> None:
    """Anon sees nothing; a user sees only rows whose user_id is theirs."""
    if caller is None:
        assert items == [], f"anon saw rows in {what}: {items}"
    for item in items:
        assert item["user_id"] == caller, f"{what}: {caller} saw a row of {item['user_id']}"


class RawRequest:
    """One request driven at the ASGI level, because httpx cannot make the
    client go away in the middle of a request: `disconnect` sends
    `http.disconnect` to the app, and `sent` keeps what the app answered."""

    def __init__(self, method: str, path: str, body: bytes, authorization: bytes) -> None:
        self.disconnect = asyncio.Event()
        # The client: its body at once, then it leaves when `disconnect` is set.
        self.receive = replay_receive(body, self.disconnect)
        self.sent: list[dict[str, Any]] = []
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {},
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), (b"authorization", authorization)],
        }

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def start(self, app: Any) -> asyncio.Future[None]:
        return asyncio.ensure_future(app(self.scope, self.receive, self.send))


class CallerOps:
    """Requests a concurrency storm mixes for one caller (`user`, with `other`
    as someone else), each asserting that the answer holds exactly the
    caller's rows: the storm tests interleave hundreds of these."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        users: list[str],
        docs: dict[str, list[str]],
        user: str,
        other: str,
        rng: random.Random,
    ) -> None:
        self.client, self.users, self.docs = client, users, docs
        self.user, self.other, self.rng = user, other, rng

    async def get_own(self) -> None:
        doc = self.rng.choice(self.docs[self.user])
        r = await self.client.get(f"/api/documents/{doc}", headers=bearer(self.user))
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == self.user and r.json()["id"] == doc

    async def get_others(self) -> None:
        doc = self.rng.choice(self.docs[self.other])
        r = await self.client.get(f"/api/documents/{doc}", headers=bearer(self.user))
        assert r.status_code == 404, r.text

    async def profile(self) -> None:
        r = await self.client.get("/api/profile", headers=bearer(self.user))
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == self.user and r.json()["name"] == f"user{self.users.index(self.user)}"

    async def hello(self) -> None:
        r = await self.client.get("/hello", headers=bearer(self.user))
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == self.user
        assert r.json()["visible_rows"]["user_profiles"] == 1
        assert r.json()["visible_rows"]["agent_requests"] == 1

    async def search(self) -> None:
        r = await self.client.get("/api/documents", params={"q": "shared words"}, headers=bearer(self.user))
        assert r.status_code == 200, r.text
        assert_only_callers_rows(self.user, r.json()["items"], "GET /api/documents?q")
        assert {d["id"] for d in r.json()["items"]} == set(self.docs[self.user])

    async def anon_write(self) -> None:
        r = await self.client.post("/api/documents", json=DOC)
        assert r.status_code == 401, r.text

    async def service_list(self) -> None:
        r = await self.client.get("/api/documents", params={"user_id": self.user, "limit": 100}, headers=service())
        assert r.status_code == 200, r.text
        assert_only_callers_rows(self.user, r.json()["items"], "service GET /api/documents?user_id")
        assert set(self.docs[self.user]) <= {d["id"] for d in r.json()["items"]}
