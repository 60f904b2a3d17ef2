"""The ceiling: the service's work as a bare ASGI app on raw asyncpg.

Per request it does what the service must do, and nothing else: verify the
HS256 token with PyJWT (exp required, role checked), take a pooled
connection, BEGIN, set the claims, sub, role and statement_timeout LOCAL in
one `set_config` statement, run the same SELECT / INSERT the service runs
(RLS decides the rows), COMMIT, and answer with orjson. The straightforward
way: four round trips (BEGIN, set_config, query, COMMIT), no caches, no
framework. Run it under uvicorn with uvloop and httptools:

    BENCH_DSN=... BENCH_JWT_SECRET=... uvicorn ceiling_app:app --app-dir bench --loop uvloop --http httptools

`BENCH_POOL_SIZE` (default 10, the service's CENTRID_POOL_MAX_SIZE default)
sizes the pool. `BENCH_MODE=connect` makes it the seed's pattern instead:
a new database connection for every request (see seed_app.py).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import jwt
import orjson

DSN = os.environ.get("BENCH_DSN", "")
SECRET = os.environ.get("BENCH_JWT_SECRET", "")
POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "10"))
MODE = os.environ.get("BENCH_MODE", "pool")
APP_NAME = {"application_name": os.environ.get("BENCH_APP_NAME", "bench-ceiling")}

COLUMNS = (
    "id, user_id, filename, file_type, file_size, processing_status, content_text, "
    "storage_path, created_at, updated_at"
)
SCOPE_SQL = (
    "SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true), "
    "set_config('request.jwt.claim.role', $3, true), set_config('statement_timeout', '15000', true), "
    "set_config('role', $3, true)"
)
LIST_SQL = f"SELECT {COLUMNS} FROM documents ORDER BY created_at DESC, id DESC LIMIT 21"
GET_SQL = f"SELECT {COLUMNS} FROM documents WHERE id = $1"
INSERT_SQL = (
    "INSERT INTO documents (filename, file_type, file_size, content_text) VALUES ($1, $2, $3, $4) "
    f"RETURNING {COLUMNS}"
)
SEARCH_SQL = """
SELECT c.id, c.document_id, d.filename, c.chunk_index, c.content, c.section_title,
       ts_rank(c.search_vector, query) AS rank
FROM document_chunks c
JOIN documents d ON d.id = c.document_id,
     websearch_to_tsquery('english', $1) AS query
WHERE c.search_vector @@ query
ORDER BY rank DESC, c.id
LIMIT $2
"""

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
_pool: asyncpg.Pool | None = None


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError


def _json(payload: Any) -> bytes:
    return orjson.dumps(payload, default=_default, option=orjson.OPT_UTC_Z)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _claims(scope: dict[str, Any]) -> dict[str, Any] | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            try:
                claims: dict[str, Any] = jwt.decode(value[7:].decode(), SECRET, algorithms=["HS256"],
                                                    options={"require": ["exp"], "verify_aud": False})
            except jwt.PyJWTError:
                return None
            return claims if claims.get("role") == "authenticated" else None
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


@contextlib.asynccontextmanager
async def _connection() -> AsyncIterator[asyncpg.Connection]:
    if MODE == "connect":
        conn = await asyncpg.connect(DSN, server_settings=APP_NAME)
        try:
            yield conn
        finally:
            await conn.close()
    else:
        assert _pool is not None
        async with _pool.acquire() as conn:
            yield conn


async def _work(conn: asyncpg.Connection, method: str, path: str, query: bytes, body: bytes) -> tuple[int, Any]:
    if path == "/api/documents" and method == "GET":
        rows = [dict(r) for r in await conn.fetch(LIST_SQL)]
        return 200, {"items": rows[:20], "next_cursor": None}
    if path == "/api/documents" and method == "POST":
        data = orjson.loads(body)
        row = await conn.fetchrow(INSERT_SQL, data["filename"], data["file_type"], data["file_size"],
                                  data.get("content_text"))
        return 201, dict(row) if row else None
    if path.startswith("/api/documents/") and method == "GET":
        row = await conn.fetchrow(GET_SQL, uuid.UUID(path.rsplit("/", 1)[1]))
        return (200, dict(row)) if row else (404, {"error": {"code": "not_found"}})
    if path == "/api/search" and method == "GET":
        q = query.decode().partition("q=")[2].partition("&")[0]
        rows = [dict(r) for r in await conn.fetch(SEARCH_SQL, q, 20)]
        return 200, {"items": rows}
    return 404, {"error": {"code": "not_found"}}


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if MODE != "connect":
                    _pool = await asyncpg.create_pool(DSN, min_size=1, max_size=POOL_SIZE,
                                                      server_settings=APP_NAME)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read_body(receive)
    claims = _claims(scope)
    if claims is None:
        await _respond(send, 401, b'{"error":{"code":"unauthorized"}}')
        return
    try:
        async with _connection() as conn:
            async with conn.transaction():
                await conn.execute(SCOPE_SQL, orjson.dumps(claims).decode(), claims["sub"], "authenticated")
                status, payload = await _work(conn, scope["method"], scope["path"], scope["query_string"], body)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        await _respond(send, 503, _json({"error": {"code": "unavailable", "message": type(exc).__name__}}))
        return
    await _respond(send, status, _json(payload))
