"""CORS: only the configured origins, exactly, get an Access-Control-Allow-Origin.

The `client` fixture allows https://app.example.test only. A request from
any other origin is still answered (CORS is the browser's check, not an
access control), but never with a header that lets a browser page on that
origin read the answer - neither `*` nor the origin echoed back. The body of
a refused preflight is the defects work's to define; only its status and
headers are checked here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from centrid.config import Settings
from tests.api_support import ALLOWED_ORIGIN, app_client
from tests.conftest import MigratedDB

# Near misses of the allowed origin: scheme, port, suffix, prefix, case of a
# different host, and the opaque origin of sandboxed frames and file: pages.
OTHER_ORIGINS = (
    "https://evil.example",
    "http://app.example.test",
    "https://app.example.test:8443",
    "https://app.example.test.evil.example",
    "https://evilapp.example.test",
    "null",
)
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials")


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


async def _refused_preflight(client: httpx.AsyncClient, origin: str) -> None:
    r = await client.options("/api/documents", headers=_preflight(origin))
    # Starlette answers 400; 403 would be as right. Never a success.
    assert r.status_code in (400, 403), (origin, r.status_code, r.text)
    for header in CORS_HEADERS:
        assert header not in r.headers, (origin, header, r.headers.get(header))


async def test_another_origin_gets_no_cors_grant(client: httpx.AsyncClient) -> None:
    for origin in OTHER_ORIGINS:
        await _refused_preflight(client, origin)
        # The actual request is served (anon: an empty list) without the
        # header a browser needs to let the page read it.
        r = await client.get("/api/documents", headers={"Origin": origin})
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "next_cursor": None}
        for header in CORS_HEADERS:
            assert header not in r.headers, (origin, header, r.headers.get(header))


async def test_the_allowed_origin_is_granted_by_name_never_by_wildcard(client: httpx.AsyncClient) -> None:
    """The control for the test above: the same requests from the allowed origin."""
    r = await client.options("/api/documents", headers=_preflight(ALLOWED_ORIGIN))
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    r = await client.get("/api/documents", headers={"Origin": ALLOWED_ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_origins_from_the_environment_reach_the_app(
    db: MigratedDB, app_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CENTRID_CORS_ORIGINS, comma-separated with spaces and empty items, as
    Settings reads it, is what the app's CORS allows."""
    monkeypatch.setenv("CENTRID_CORS_ORIGINS", " https://a.example ,, https://b.example:8443 ,")
    origins = Settings.from_env().cors_origins
    assert origins == ("https://a.example", "https://b.example:8443")
    async with app_client(replace(app_settings, cors_origins=origins)) as (_, c):
        for origin in origins:
            r = await c.options("/api/documents", headers=_preflight(origin, "PATCH"))
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, (origin, r.text)
        for origin in (ALLOWED_ORIGIN, "https://b.example"):
            await _refused_preflight(c, origin)
    monkeypatch.setenv("CENTRID_CORS_ORIGINS", "")
    async with app_client(replace(app_settings, cors_origins=Settings.from_env().cors_origins)) as (_, c):
        await _refused_preflight(c, ALLOWED_ORIGIN)
