"""Retrieval test data: unit vectors, a caller's corpus through the API,
and the crowding case (other users' vectors close to a query, the caller's
farther off), with the exact top-k as the reference."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
import numpy as np

from tests.api_support import make_document
from tests.conftest import MigratedDB
from tests.support import bearer, create_user

DIM = 384


def unit(*pairs: tuple[int, float]) -> list[float]:
    """A unit vector with the given (axis, weight) components."""
    v = np.zeros(DIM)
    for axis, weight in pairs:
        v[axis] = weight
    return [float(x) for x in v / np.linalg.norm(v)]


def vtext(vector: Any) -> str:
    """pgvector's text form."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


E0, E1, E2 = unit((0, 1)), unit((1, 1)), unit((2, 1))


async def post_chunks(client: httpx.AsyncClient, user: str, doc: str, chunks: list[dict[str, Any]], **params: str) -> httpx.Response:
    return await client.post(f"/api/documents/{doc}/chunks", json=chunks, headers=bearer(user), params=params)


async def search(client: httpx.AsyncClient, user: str | None, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/api/search", json=body, headers=headers or bearer(user))


async def corpus(db: MigratedDB, client: httpx.AsyncClient, user: str, chunks: list[tuple[str, list[float] | None]]) -> tuple[str, list[str]]:
    doc = (await make_document(client, user, filename="corpus.txt"))["id"]
    body = [{"chunk_index": i, "content": content, **({"embedding": vec} if vec is not None else {})}
            for i, (content, vec) in enumerate(chunks)]
    r = await post_chunks(client, user, doc, body)
    assert r.status_code == 201, r.text
    return doc, [c["id"] for c in r.json()["items"]]


def noisy(rng: np.random.Generator, centre: np.ndarray, sigma: float, n: int) -> np.ndarray:
    v = centre + sigma * rng.standard_normal((n, DIM)) / math.sqrt(DIM)
    result: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return result


async def crowd(db: MigratedDB, users: int, per_user: int, centre: np.ndarray, rng: np.random.Generator) -> None:
    """Other users' chunks, all close to `centre`, written as the owner in bulk."""
    vectors = noisy(rng, centre, 0.3, users * per_user)
    user_ids = [uuid.UUID(await create_user(db.owner)) for _ in range(users)]
    docs = [(uuid.uuid4(), u) for u in user_ids]
    await db.owner.executemany(
        "INSERT INTO documents (id, user_id, filename, file_type, file_size) VALUES ($1, $2, 'crowd', 't', 1)", docs)
    rows = [(docs[i // per_user][0], i % per_user, f"crowd {i}", vtext(vectors[i]))
            for i in range(users * per_user)]
    await db.owner.executemany(
        "INSERT INTO document_chunks (document_id, chunk_index, content, embedding) "
        "VALUES ($1, $2, $3, $4::text::extensions.vector)", rows)


async def crowded_caller(db: MigratedDB, client: httpx.AsyncClient, seed: int) -> tuple[str, list[str], list[float]]:
    """The crowding case: 30 users' 1,200 chunks close to a query, and a
    caller (returned with their 15 chunk ids and the query) whose chunks
    are all farther from it than the crowd is. Statistics are fresh."""
    rng = np.random.default_rng(seed)
    centre = np.array(E0)
    await crowd(db, users=30, per_user=40, centre=centre, rng=rng)
    alice = await create_user(db.owner)
    mine = noisy(rng, np.array(unit((0, 0.5), (1, 1))), 0.5, 15)
    _, ids = await corpus(db, client, alice, [(f"mine {i}", [float(x) for x in v]) for i, v in enumerate(mine)])
    query = [float(x) for x in noisy(rng, centre, 0.1, 1)[0]]
    await db.owner.execute("ANALYZE documents; ANALYZE document_chunks")
    return alice, ids, query


async def exact_top_k(db: MigratedDB, user: str, query: list[float], k: int) -> list[str]:
    """The reference: every one of the user's chunks ranked exactly."""
    rows = await db.owner.fetch(
        "SELECT c.id FROM document_chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.user_id = $1 AND c.embedding IS NOT NULL "
        "ORDER BY (c.embedding OPERATOR(extensions.<=>) $2::text::extensions.vector) + 0, c.id LIMIT $3",
        uuid.UUID(user), vtext(query), k)
    return [str(r["id"]) for r in rows]
