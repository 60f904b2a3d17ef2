"""Keyset pagination ends where the rows end.

A list whose row count is an exact multiple of `limit` answers its last,
full page with `next_cursor: null`: a client stops on a null cursor, and a
cursor that leads to an empty page costs it a request for nothing (and
reads as "there is more"). The tests' `list_all` helper fails on such a
dangling cursor rather than following it; its own test is here too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.api_support import list_all, make_document, make_request, make_session, make_usage_event
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

Maker = Callable[[httpx.AsyncClient, str], Awaitable[dict[str, Any]]]

LISTS: dict[str, Maker] = {
    "/api/documents": lambda c, u: make_document(c, u),
    "/api/agent-requests": lambda c, u: make_request(c, u),
    "/api/agent-sessions": lambda c, u: make_session(c, u),
    "/api/usage-events": lambda c, u: make_usage_event(c, u),
}


async def _page(client: httpx.AsyncClient, path: str, user: str, limit: int, cursor: str | None = None,
                **params: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"limit": limit, **params}
    if cursor is not None:
        query["cursor"] = cursor
    r = await client.get(path, params=query, headers=bearer(user))
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


@pytest.mark.parametrize("path", sorted(LISTS))
async def test_an_exact_multiple_of_limit_ends_without_a_cursor(
    db: MigratedDB, client: httpx.AsyncClient, path: str
) -> None:
    alice = await create_user(db.owner)
    limit = 3
    made = [(await LISTS[path](client, alice))["id"] for _ in range(limit)]

    # One exactly full page: nothing follows it.
    only = await _page(client, path, alice, limit)
    assert len(only["items"]) == limit
    assert only["next_cursor"] is None, f"{path}: a cursor on the last, full page"

    # Two exactly full pages: the first points at the second, the second at nothing.
    made += [(await LISTS[path](client, alice))["id"] for _ in range(limit)]
    first = await _page(client, path, alice, limit)
    assert len(first["items"]) == limit and first["next_cursor"] is not None
    second = await _page(client, path, alice, limit, first["next_cursor"])
    assert len(second["items"]) == limit
    assert second["next_cursor"] is None, f"{path}: a cursor on the last, full page"
    seen = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(seen) == sorted(made) and len(set(seen)) == len(made)

    # Page by page down to one row each, through the helper that refuses dangling cursors.
    assert sorted(i["id"] for i in await list_all(client, path, bearer(alice), limit=1)) == sorted(made)
    assert len(await list_all(client, path, bearer(alice), limit=2)) == 2 * limit
    assert len(await list_all(client, path, bearer(alice), limit=2 * limit)) == 2 * limit


async def test_an_exact_multiple_under_a_filter_ends_without_a_cursor(db: MigratedDB, client: httpx.AsyncClient) -> None:
    """The count that matters is the filtered one, not the table's."""
    alice = await create_user(db.owner)
    for _ in range(4):
        await make_document(client, alice, content_text="zebra")
    for _ in range(3):
        await make_document(client, alice, content_text="giraffe")
    first = await _page(client, "/api/documents", alice, 2, q="zebra")
    second = await _page(client, "/api/documents", alice, 2, first["next_cursor"], q="zebra")
    assert len(second["items"]) == 2 and second["next_cursor"] is None
    assert len(await list_all(client, "/api/documents", bearer(alice), limit=2, q="zebra")) == 4


async def test_an_empty_list_has_no_cursor(db: MigratedDB, client: httpx.AsyncClient) -> None:
    alice = await create_user(db.owner)
    for path in LISTS:
        assert await _page(client, path, alice, 1) == {"items": [], "next_cursor": None}, path


def _fake_list(pages: list[dict[str, Any]]) -> httpx.AsyncClient:
    """A client whose list endpoint answers the given pages in turn."""
    answers = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://fake")


@pytest.mark.parametrize(
    ("pages", "problem"),
    [
        ([{"items": [{"id": 1}, {"id": 2}], "next_cursor": "c"}, {"items": [], "next_cursor": None}], "empty page"),
        ([{"items": [{"id": 1}], "next_cursor": "c"}, {"items": [{"id": 2}], "next_cursor": None}], "< limit"),
    ],
)
async def test_the_helper_refuses_a_dangling_cursor(pages: list[dict[str, Any]], problem: str) -> None:
    async with _fake_list(pages) as fake:
        with pytest.raises(AssertionError, match=problem):
            await list_all(fake, "/api/things", {}, limit=2)
    async with _fake_list([{"items": [{"id": 1}, {"id": 2}], "next_cursor": "c"},
                           {"items": [{"id": 3}], "next_cursor": None}]) as fake:
        assert len(await list_all(fake, "/api/things", {}, limit=2)) == 3
