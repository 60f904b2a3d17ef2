"""The request scope's commit policy: a request's writes are committed only
when its response status is below 400; any error status, and any exception
the app lets escape, rolls them back.

No real endpoint writes and then answers with an error status, so the
policy is exercised by routes mounted only in this module's app: each one
writes through the request's transaction (as the caller, under RLS) and then
answers with the status under test, or raises.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from centrid.errors import ApiError
from tests.api_support import app_client
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

COMMITTED = (200, 201, 204, 303)
ROLLED_BACK = (400, 401, 403, 404, 409, 422, 500, 503)


@dataclass
class Writes:
    """What the last test route wrote before it answered (rows, as the caller saw them)."""

    profiles: int = -1
    documents: int = -1


async def _write(request: Request, writes: Writes) -> str:
    """Rename the caller's profile and add a document, through the request's
    transaction (Piccolo's current one): as the caller, so RLS lets exactly
    one profile row be renamed."""
    engine = engine_finder()
    assert engine is not None
    marker = request.query_params["marker"]
    renamed = await engine.run_querystring(QueryString("UPDATE user_profiles SET name = {} RETURNING id", marker))
    inserted = await engine.run_querystring(
        QueryString("INSERT INTO documents (filename, file_type, file_size) VALUES ({}, 'text/plain', 1) RETURNING id",
                    marker)
    )
    writes.profiles, writes.documents = len(renamed), len(inserted)
    return marker


def _routes(writes: Writes) -> list[Route]:
    async def answer(request: Request) -> Response:
        marker = await _write(request, writes)
        status = int(request.path_params["status"])
        if status == 204:
            return Response(status_code=204)
        headers = {"location": "/elsewhere"} if 300 <= status < 400 else None
        return Response(marker, status_code=status, headers=headers, media_type="text/plain")

    async def raise_plain(request: Request) -> Response:
        await _write(request, writes)
        raise RuntimeError("handler failed after writing")

    async def raise_api_error(request: Request) -> Response:
        await _write(request, writes)
        raise ApiError(409, "conflict", "refused after writing")

    return [
        Route("/_test/write-then/{status:int}", answer, methods=["POST"]),
        Route("/_test/write-then-raise", raise_plain, methods=["POST"]),
        Route("/_test/write-then-api-error", raise_api_error, methods=["POST"]),
    ]


@dataclass
class Harness:
    client: httpx.AsyncClient
    writes: Writes
    user: str
    db: MigratedDB

    async def stored(self, marker: str) -> tuple[bool, bool]:
        """(profile renamed to marker, document named marker exists), as the owner sees it."""
        name = await self.db.owner.fetchval("SELECT name FROM user_profiles WHERE user_id = $1", uuid.UUID(self.user))
        docs = await self.db.owner.fetchval("SELECT count(*) FROM documents WHERE filename = $1", marker)
        return name == marker, docs == 1

    async def post(self, path: str, marker: str) -> httpx.Response:
        self.writes.profiles = self.writes.documents = -1
        r = await self.client.post(path, params={"marker": marker}, headers=bearer(self.user))
        # The write really happened inside the request, as the caller.
        assert (self.writes.profiles, self.writes.documents) == (1, 1), (path, self.writes)
        return r


@pytest.fixture
async def harness(db: MigratedDB, app_settings: Any) -> AsyncIterator[Harness]:
    user = await create_user(db.owner, name="Before")
    writes = Writes()
    async with app_client(app_settings) as (app, client):
        app.router.routes[:0] = _routes(writes)
        yield Harness(client=client, writes=writes, user=user, db=db)


async def test_a_status_below_400_commits_the_write(harness: Harness) -> None:
    not_stored = []
    for status in COMMITTED:
        marker = f"committed-{status}"
        r = await harness.post(f"/_test/write-then/{status}", marker)
        assert r.status_code == status, r.text
        if await harness.stored(marker) != (True, True):
            not_stored.append(status)
    assert not not_stored, f"writes of these successful responses were not committed: {not_stored}"


async def test_an_error_status_rolls_the_write_back(harness: Harness) -> None:
    stored = []
    for status in ROLLED_BACK:
        marker = f"rolled-back-{status}"
        r = await harness.post(f"/_test/write-then/{status}", marker)
        assert r.status_code == status, r.text
        if await harness.stored(marker) != (False, False):
            stored.append(status)
    assert not stored, f"writes of these error responses were committed: {stored}"
    assert await harness.db.owner.fetchval("SELECT count(*) FROM documents") == 0
    assert await harness.db.owner.fetchval("SELECT name FROM user_profiles") == "Before"


async def test_an_exception_after_writing_is_a_500_and_rolls_back(harness: Harness) -> None:
    r = await harness.post("/_test/write-then-raise", "raised")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "handler failed" not in r.text and "Traceback" not in r.text
    assert await harness.stored("raised") == (False, False)


async def test_an_api_error_raised_after_writing_rolls_back(harness: Harness) -> None:
    r = await harness.post("/_test/write-then-api-error", "api-error")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert await harness.stored("api-error") == (False, False)


async def test_the_connection_is_clean_for_the_next_request(harness: Harness) -> None:
    """After a rolled-back request, the same pool serves a committing one normally."""
    for status in (500, 200, 422, 201):
        await harness.post(f"/_test/write-then/{status}", f"seq-{status}")
    assert await harness.stored("seq-201") == (True, True)
    names = {r["filename"] for r in await harness.db.owner.fetch("SELECT filename FROM documents")}
    assert names == {"seq-200", "seq-201"}
