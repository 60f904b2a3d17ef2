"""A rejected CORS preflight is the JSON error (issue 7, defect 8)."""

from __future__ import annotations

import httpx
import pytest

from tests.api_support import assert_error

ALLOWED = "https://app.example.test"  # conftest's app_settings


@pytest.mark.parametrize(
    ("headers", "rejected"),
    [
        ({"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, ["origin"]),
        ({"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}, ["method"]),
        ({"Origin": ALLOWED, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-evil"},
         ["headers"]),
        ({"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}, ["origin", "method"]),
    ],
)
async def test_rejected_preflight_is_json(client: httpx.AsyncClient, headers: dict[str, str], rejected: list[str]) -> None:
    r = await client.options("/api/documents", headers={**headers, "X-Request-ID": "pre-1"})
    error = assert_error(r, 400, "cors_rejected")
    assert error["details"] == {"rejected": rejected}
    assert r.headers["x-request-id"] == "pre-1"
    assert r.headers.get("access-control-allow-origin") in (None, ALLOWED)
    assert int(r.headers["content-length"]) == len(r.content)


async def test_allowed_preflight_is_unchanged(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/documents", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PATCH"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
