"""Piccolo Admin at /admin/: its own login, all rows behind it, nothing without it.

The admin is driven through its JSON API exactly as its single-page app
drives it: GET /admin/ sets the `csrftoken` cookie, POST
/admin/public/login/ (header X-CSRFToken) sets the `id` session cookie, and
/admin/api/tables/<table>/ lists rows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import MigratedDB
from tests.support import acting_as, bearer, create_user, run_piccolo
from tests.support import SIX_TABLES as _WRITTEN_OUT

# The suite's one written-out list (independent of the registry), sorted as the admin lists them.
SIX_TABLES = tuple(sorted(_WRITTEN_OUT))
ADMIN_LOGIN_TABLES = ("piccolo_user", "sessions")
PASSWORD = "correct-horse-battery-staple"

# Piccolo warns on every non-production login; production=True is tested below.
pytestmark = pytest.mark.filterwarnings("ignore:If running sessions in production:UserWarning")


async def make_login(username: str, *, admin: bool = True, active: bool = True) -> None:
    """An admin login made with Piccolo's own BaseUser.create_user.

    Called before the app's pool opens, so Piccolo runs it on a connection
    of its own as the DSN's (owner) role: piccolo_user is out of reach of
    the pool's API roles."""
    import piccolo_conf
    from piccolo.apps.user.tables import BaseUser

    assert piccolo_conf.DB.pool is None, "make logins before the app's pool opens"
    await BaseUser.create_user(
        username=username,
        password=PASSWORD,
        email=f"{username}@example.test",
        admin=admin,
        active=active,
        superuser=admin,
    )


@asynccontextmanager
async def open_client(cfg: Any, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    from centrid.api.app import create_app

    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
            yield c


@pytest.fixture
async def admin_client(db: MigratedDB, app_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process app (as the `client` fixture), with the logins `admin`
    (admin), `staff` (active, not admin) and `gone` (admin, inactive)."""
    await make_login("admin")
    await make_login("staff", admin=False)
    await make_login("gone", active=False)
    async with open_client(app_settings) as c:
        yield c


async def csrf_token(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/")
    assert page.status_code == 200, page.text
    token = client.cookies.get("csrftoken")
    assert token, "GET /admin/ should set the csrftoken cookie"
    return token


async def login(client: httpx.AsyncClient, username: str = "admin", password: str = PASSWORD) -> httpx.Response:
    token = await csrf_token(client)
    return await client.post(
        "/admin/public/login/",
        json={"username": username, "password": password},
        headers={"X-CSRFToken": token},
    )


async def seed(owner: asyncpg.Connection) -> dict[str, Any]:
    """Two users, each with a row in every one of the six tables."""
    world: dict[str, Any] = {}
    for name in ("alice", "bob"):
        uid = await create_user(owner, name=name.title())
        doc = await owner.fetchval(
            "INSERT INTO documents (user_id, filename, file_type, file_size, content_text) "
            "VALUES ($1, $2, 'text/plain', 5, 'hello') RETURNING id",
            uid,
            f"{name}-notes.txt",
        )
        await owner.execute(
            "INSERT INTO document_chunks (document_id, chunk_index, content) VALUES ($1, 0, $2)",
            doc,
            f"{name} chunk",
        )
        await owner.execute(
            "INSERT INTO agent_requests (user_id, agent_type, content) VALUES ($1, 'research', $2)",
            uid,
            f"{name} asks",
        )
        await owner.execute("INSERT INTO agent_sessions (user_id) VALUES ($1)", uid)
        await owner.execute(
            "INSERT INTO usage_events (user_id, event_type, tokens_used) VALUES ($1, $2, 7)",
            uid,
            f"{name}_event",
        )
        world[name] = {"id": uid, "document": str(doc)}
    return world


def owners(body: dict[str, Any], table: str, world: dict[str, Any]) -> set[str]:
    """Which of the seeded users own the listed rows."""
    names = {v["id"]: k for k, v in world.items()}
    if table == "document_chunks":
        docs = {v["document"]: k for k, v in world.items()}
        return {docs[row["document_id"]] for row in body["rows"] if row["document_id"] in docs}
    return {names[row["user_id"]] for row in body["rows"] if row["user_id"] in names}


# ---------------------------------------------------------------------------
# The admin works, and sees everyone's rows.


async def test_admin_logs_in_and_lists_every_users_rows(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    world = await seed(db.owner)
    response = await login(admin_client)
    assert response.status_code == 200, response.text
    assert admin_client.cookies.get("id"), "login should set the session cookie"

    me = await admin_client.get("/admin/api/user/")
    assert me.status_code == 200
    assert me.json()["username"] == "admin"

    tables = await admin_client.get("/admin/api/tables/")
    assert tables.status_code == 200
    # The six tables and nothing else: not the login tables, not auth.users.
    assert sorted(tables.json()) == list(SIX_TABLES)

    docs = await admin_client.get("/admin/api/tables/documents/", params={"__readable": "true"})
    assert docs.status_code == 200, docs.text
    filenames = {row["filename"] for row in docs.json()["rows"]}
    assert filenames == {"alice-notes.txt", "bob-notes.txt"}

    for table in SIX_TABLES:
        # As the admin's list view asks for it: readable foreign keys, ordered.
        listed = await admin_client.get(
            f"/admin/api/tables/{table}/", params={"__readable": "true", "__order": "-id", "__page_size": "15"}
        )
        assert listed.status_code == 200, (table, listed.text)
        assert owners(listed.json(), table, world) == {"alice", "bob"}, table
        count = await admin_client.get(f"/admin/api/tables/{table}/count/")
        assert count.status_code == 200
        expected = await db.owner.fetchval(f"SELECT count(*) FROM public.{table}")
        assert count.json()["count"] == expected
        schema = await admin_client.get(f"/admin/api/tables/{table}/schema/")
        assert schema.status_code == 200, (table, schema.text)

    # A single row, another user's, and the chunk's link back to its document.
    one = await admin_client.get(f"/admin/api/tables/documents/{world['bob']['document']}/")
    assert one.status_code == 200
    assert one.json()["user_id"] == world["bob"]["id"]
    chunks = await admin_client.get(
        "/admin/api/tables/document_chunks/",
        params={"document_id": world["alice"]["document"], "__readable": "true"},
    )
    assert [r["content"] for r in chunks.json()["rows"]] == ["alice chunk"]
    assert chunks.json()["rows"][0]["document_id_readable"] == world["alice"]["document"]


async def test_admin_made_with_piccolo_user_create_can_log_in(db: MigratedDB, client: httpx.AsyncClient) -> None:
    created = run_piccolo(
        [
            "user",
            "create",
            "--username=ops",
            f"--password={PASSWORD}",
            "--email=ops@example.test",
            "--is_admin=True",
            "--is_superuser=False",
            "--is_active=True",
        ],
        db.dsn,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    alice = await create_user(db.owner)
    await db.owner.execute(
        "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'cli.txt', 'text/plain', 1)", alice
    )
    assert (await login(client, "ops")).status_code == 200
    docs = await client.get("/admin/api/tables/documents/")
    assert [r["filename"] for r in docs.json()["rows"]] == ["cli.txt"]


async def test_admin_changes_rows_of_any_user(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    world = await seed(db.owner)
    assert (await login(admin_client)).status_code == 200
    csrf = {"X-CSRFToken": admin_client.cookies["csrftoken"]}

    changed = await admin_client.patch(
        f"/admin/api/tables/documents/{world['alice']['document']}/",
        json={"processing_status": "completed"},
        headers=csrf,
    )
    assert changed.status_code == 200, changed.text
    status = await db.owner.fetchval(
        "SELECT processing_status FROM documents WHERE id = $1", uuid.UUID(world["alice"]["document"])
    )
    assert status == "completed"

    # As the admin's "add row" form does: start from the table's defaults.
    defaults = await admin_client.get("/admin/api/tables/documents/new/")
    assert defaults.status_code == 200, defaults.text
    created = await admin_client.post(
        "/admin/api/tables/documents/",
        json={
            **defaults.json(),
            "user_id": world["bob"]["id"],
            "filename": "by-admin.txt",
            "file_type": "text/plain",
            "file_size": 9,
        },
        headers=csrf,
    )
    assert created.status_code == 201, created.text
    owner = await db.owner.fetchval("SELECT user_id::text FROM documents WHERE filename = 'by-admin.txt'")
    assert owner == world["bob"]["id"]

    # The usage ledger is insert-only, for the admin too.
    event_id = await db.owner.fetchval("SELECT id::text FROM usage_events LIMIT 1")
    for method in ("PATCH", "DELETE"):
        refused = await admin_client.request(
            method, f"/admin/api/tables/usage_events/{event_id}/", json={"tokens_used": 1}, headers=csrf
        )
        assert refused.status_code == 405, (method, refused.text)
    assert await db.owner.fetchval("SELECT count(*) FROM usage_events WHERE tokens_used = 7") == 2

    # A write without the CSRF header is refused and changes nothing.
    forged = await admin_client.patch(
        f"/admin/api/tables/documents/{world['bob']['document']}/", json={"filename": "forged.txt"}
    )
    assert forged.status_code == 403
    assert await db.owner.fetchval("SELECT count(*) FROM documents WHERE filename = 'forged.txt'") == 0


# ---------------------------------------------------------------------------
# Refusals.


def row_leak(response: httpx.Response) -> bool:
    return "notes.txt" in response.text


async def test_wrong_password_is_refused(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    await seed(db.owner)
    for username, password in (("admin", "wrong-password"), ("nobody", PASSWORD), ("admin", "")):
        refused = await login(admin_client, username, password)
        assert refused.status_code in (401, 422), (username, refused.status_code)
        assert not admin_client.cookies.get("id")
    listed = await admin_client.get("/admin/api/tables/documents/")
    assert listed.status_code == 401
    assert not row_leak(listed)
    assert await db.owner.fetchval("SELECT count(*) FROM sessions") == 0


async def test_non_admin_and_inactive_logins_see_nothing(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    await seed(db.owner)
    for username in ("staff", "gone"):
        admin_client.cookies.clear()
        await login(admin_client, username)
        listed = await admin_client.get("/admin/api/tables/documents/")
        assert listed.status_code == 401, (username, listed.text)
        assert not row_leak(listed)


async def test_no_session_is_refused(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    world = await seed(db.owner)
    paths = [
        "/admin/api/tables/",
        "/admin/api/tables/documents/",
        f"/admin/api/tables/documents/{world['alice']['document']}/",
        "/admin/api/tables/documents/ids/",
        "/admin/api/user/",
    ]
    for cookies in ({}, {"id": "not-a-session"}):
        admin_client.cookies.clear()
        for name, value in cookies.items():
            admin_client.cookies.set(name, value)
        for path in paths:
            refused = await admin_client.get(path)
            assert refused.status_code == 401, (path, refused.status_code)
            assert not row_leak(refused)
            assert world["alice"]["document"] not in refused.text


async def test_user_bearer_token_alone_gets_no_admin_data(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    world = await seed(db.owner)
    alice = world["alice"]["id"]
    for headers in (bearer(alice), bearer(None, role="service_role"), {"Authorization": "Bearer not-a-jwt"}):
        for method, path in (
            ("GET", "/admin/api/tables/documents/"),
            ("GET", f"/admin/api/tables/documents/{world['bob']['document']}/"),
            ("GET", "/admin/api/tables/user_profiles/"),
            ("DELETE", f"/admin/api/tables/documents/{world['bob']['document']}/"),
        ):
            refused = await admin_client.request(method, path, headers=headers)
            assert refused.status_code in (401, 403), (method, path, refused.status_code)
            assert not row_leak(refused)
    assert await db.owner.fetchval("SELECT count(*) FROM documents") == 2


async def test_admin_session_is_no_key_to_the_user_api(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    """The session cookie means nothing outside /admin: the API runs as anon."""
    await seed(db.owner)
    assert (await login(admin_client)).status_code == 200
    listed = await admin_client.get("/api/documents")
    assert not row_leak(listed)
    # Runs as anon, who sees no user rows.
    assert listed.status_code in (200, 401), listed.text
    if listed.status_code == 200:
        assert listed.json()["items"] == []


async def test_logout_ends_the_session(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    assert (await login(admin_client)).status_code == 200
    session = admin_client.cookies["id"]
    out = await admin_client.post("/admin/public/logout/", headers={"X-CSRFToken": admin_client.cookies["csrftoken"]})
    assert out.status_code == 200, out.text
    assert await db.owner.fetchval("SELECT count(*) FROM sessions") == 0
    admin_client.cookies.set("id", session)
    assert (await admin_client.get("/admin/api/tables/documents/")).status_code == 401


# ---------------------------------------------------------------------------
# CSRF and cookies.


async def test_login_needs_the_csrf_token(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    body = {"username": "admin", "password": PASSWORD}
    without_cookie = await admin_client.post("/admin/public/login/", json=body, headers={"X-CSRFToken": "x"})
    assert without_cookie.status_code == 403
    token = await csrf_token(admin_client)
    without_header = await admin_client.post("/admin/public/login/", json=body)
    assert without_header.status_code == 403
    mismatch = await admin_client.post("/admin/public/login/", json=body, headers={"X-CSRFToken": token + "x"})
    assert mismatch.status_code == 403
    assert not admin_client.cookies.get("id")


async def test_over_https_origin_must_be_this_host_and_cookie_is_secure(db: MigratedDB, app_settings: Any) -> None:
    await make_login("admin")
    cfg = replace(app_settings, admin_secure_cookies=True)
    async with open_client(cfg, base_url="https://admin.example.test") as c:
        token = await csrf_token(c)
        body = {"username": "admin", "password": PASSWORD}
        for origin in ("https://evil.example.test", "https://admin.example.test.evil.example"):
            cross = await c.post("/admin/public/login/", json=body, headers={"X-CSRFToken": token, "Origin": origin})
            assert cross.status_code == 403, origin
            assert "id" not in cross.cookies
        no_origin = await c.post("/admin/public/login/", json=body, headers={"X-CSRFToken": token})
        assert no_origin.status_code == 403
        same = await c.post(
            "/admin/public/login/", json=body, headers={"X-CSRFToken": token, "Origin": "https://admin.example.test"}
        )
        assert same.status_code == 200, same.text
        set_cookie = same.headers["set-cookie"].lower()
        assert set_cookie.startswith("id=") and "secure" in set_cookie and "httponly" in set_cookie
        listed = await c.get("/admin/api/tables/documents/")
        assert listed.status_code == 200
        # A referer from this host (no Origin) is accepted too, as browsers send on same-origin posts.
        out = await c.post(
            "/admin/public/logout/",
            headers={"X-CSRFToken": token, "Referer": "https://admin.example.test/admin/"},
        )
        assert out.status_code == 200


async def test_session_cookie_not_secure_by_default(db: MigratedDB, admin_client: httpx.AsyncClient) -> None:
    response = await login(admin_client)
    assert response.status_code == 200
    assert "secure" not in response.headers["set-cookie"].lower()


# ---------------------------------------------------------------------------
# The single-page app and its assets.


async def test_admin_page_and_static_assets_are_served(db: MigratedDB, client: httpx.AsyncClient) -> None:
    bare = await client.get("/admin")
    assert bare.status_code in (301, 307, 308)
    assert bare.headers["location"].endswith("/admin/")
    page = await client.get("/admin/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        served = await client.get(f"/admin/{asset}")
        assert served.status_code == 200, asset
        kind = "javascript" if asset.endswith(".js") else "css"
        assert kind in served.headers["content-type"], asset
        assert len(served.content) > 1000
    meta = await client.get("/admin/public/meta/")
    assert meta.status_code == 200
    assert meta.json()["site_name"] == "Centrid admin"


# ---------------------------------------------------------------------------
# The login tables at the SQL level.


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
@pytest.mark.parametrize("table", ADMIN_LOGIN_TABLES)
async def test_api_roles_cannot_touch_admin_login_tables(db: MigratedDB, role: Any, table: str) -> None:
    await make_login("admin")
    sub = await create_user(db.owner) if role == "authenticated" else None
    statements = [
        f"SELECT * FROM public.{table}",
        f"SELECT count(*) FROM public.{table}",
        f"DELETE FROM public.{table}",
        f"UPDATE public.{table} SET id = id",
    ]
    for sql in statements:
        async with acting_as(db.dsn, role, sub) as conn:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(sql)
    async with acting_as(db.dsn, role, sub) as conn:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            if table == "piccolo_user":
                await conn.execute(
                    "INSERT INTO public.piccolo_user (username, password, email, active, admin, superuser) "
                    "VALUES ('intruder', 'x', 'i@example.test', true, true, true)"
                )
            else:
                await conn.execute(
                    "INSERT INTO public.sessions (token, user_id, expiry_date, max_expiry_date) "
                    "VALUES ('t', 1, now() + interval '1 day', now() + interval '1 day')"
                )


async def test_admin_role_reaches_login_tables_and_all_rows(db: MigratedDB) -> None:
    await make_login("admin")
    world = await seed(db.owner)
    async with acting_as(db.dsn, "centrid_admin") as conn:
        assert await conn.fetchval("SELECT count(*) FROM public.piccolo_user") == 1
        assert await conn.fetchval("SELECT count(*) FROM public.sessions") == 0
        owners_seen = await conn.fetch("SELECT user_id::text AS u FROM public.documents")
        assert {r["u"] for r in owners_seen} == {world["alice"]["id"], world["bob"]["id"]}
