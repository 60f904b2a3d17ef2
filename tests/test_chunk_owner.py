"""The owner a chunk carries is its document's, whatever anyone writes.

`document_chunks.user_id` exists for retrieval (one index per owner, the
planner's statistics); the policies compare it. So it must never disagree
with the document: a trigger sets it from the document on every insert and
on any change of the link, and a composite foreign key ON UPDATE CASCADE
makes a disagreeing row impossible even with the trigger out of the way.
Each test proves one of these through the real database.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from tests.api_support import make_document
from tests.conftest import MigratedDB
from tests.rls_support import insert_chunk, insert_document
from tests.support import acting_as, bearer, create_user, run_piccolo


async def _owner_of_chunk(conn: asyncpg.Connection, chunk_id: str) -> str:
    return str(await conn.fetchval("SELECT user_id FROM document_chunks WHERE id = $1", uuid.UUID(chunk_id)))


async def test_a_chunk_created_through_the_api_carries_its_documents_owner(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    alice = await create_user(db.owner)
    doc = (await make_document(client, alice))["id"]
    r = await client.post(f"/api/documents/{doc}/chunks", json={"chunk_index": 0, "content": "x"}, headers=bearer(alice))
    assert r.status_code == 201, r.text
    chunk = r.json()["items"][0]
    assert await _owner_of_chunk(db.owner, chunk["id"]) == alice
    assert "user_id" not in chunk  # not part of the chunk's API shape


async def test_an_explicit_wrong_owner_is_overwritten_by_the_documents(db: MigratedDB) -> None:
    alice, bob = await create_user(db.owner), await create_user(db.owner)
    doc = await insert_document(db.owner, alice)
    async with acting_as(db.dsn, "service_role", commit=True) as conn:
        chunk = await conn.fetchval(
            "INSERT INTO document_chunks (document_id, chunk_index, content, user_id) VALUES ($1, 0, 'x', $2) RETURNING id",
            uuid.UUID(doc), uuid.UUID(bob))
    assert await _owner_of_chunk(db.owner, str(chunk)) == alice
    await db.owner.execute("UPDATE document_chunks SET user_id = $1 WHERE id = $2", uuid.UUID(bob), chunk)
    assert await _owner_of_chunk(db.owner, str(chunk)) == alice


async def test_a_user_may_not_write_the_owner_column(db: MigratedDB) -> None:
    alice = await create_user(db.owner)
    doc = await insert_document(db.owner, alice)
    async with acting_as(db.dsn, "authenticated", alice) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO document_chunks (document_id, chunk_index, content, user_id) VALUES ($1, 0, 'x', $2)",
                uuid.UUID(doc), uuid.UUID(alice))


async def test_a_chunk_in_someone_elses_document_is_refused_by_the_policy(db: MigratedDB) -> None:
    """The trigger runs as the caller: Bob cannot see Alice's document, so
    the copied owner is NULL, and RLS refuses the row before NOT NULL does."""
    alice, bob = await create_user(db.owner), await create_user(db.owner)
    doc = await insert_document(db.owner, alice)
    async with acting_as(db.dsn, "authenticated", bob) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await insert_chunk(conn, doc)
    assert await db.owner.fetchval("SELECT count(*) FROM document_chunks") == 0


async def test_chunks_follow_their_document_to_a_new_owner(db: MigratedDB) -> None:
    alice, bob = await create_user(db.owner), await create_user(db.owner)
    doc = await insert_document(db.owner, alice)
    chunk = await insert_chunk(db.owner, doc)
    async with acting_as(db.dsn, "service_role", commit=True) as conn:
        await conn.execute("UPDATE documents SET user_id = $1 WHERE id = $2", uuid.UUID(bob), uuid.UUID(doc))
    assert await _owner_of_chunk(db.owner, chunk) == bob
    async with acting_as(db.dsn, "authenticated", alice) as conn:
        assert await conn.fetchval("SELECT count(*) FROM document_chunks") == 0
    async with acting_as(db.dsn, "authenticated", bob) as conn:
        assert await conn.fetchval("SELECT count(*) FROM document_chunks") == 1


async def test_the_foreign_key_holds_without_the_trigger(db: MigratedDB) -> None:
    alice, bob = await create_user(db.owner), await create_user(db.owner)
    doc = await insert_document(db.owner, alice)
    chunk = await insert_chunk(db.owner, doc)
    tr = db.owner.transaction()
    await tr.start()
    try:
        await db.owner.execute("ALTER TABLE document_chunks DISABLE TRIGGER document_chunks_user_id_from_documents")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await db.owner.execute("UPDATE document_chunks SET user_id = $1 WHERE id = $2", uuid.UUID(bob), uuid.UUID(chunk))
    finally:
        await tr.rollback()
    assert await _owner_of_chunk(db.owner, chunk) == alice


async def test_the_migration_fills_in_the_owner_of_existing_chunks(empty_dsn: str) -> None:
    """Chunks written before the owner column existed get their document's
    owner when it is added; backwards takes it off again."""
    def ok(result: object) -> None:
        assert getattr(result, "returncode") == 0, getattr(result, "stdout", "") + getattr(result, "stderr", "")

    ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn))
    # The security migration that adds the column, then the auto migration
    # that adds its key's target.
    ok(run_piccolo(["migrations", "backwards", "centrid", "--auto_agree"], empty_dsn))
    ok(run_piccolo(["migrations", "backwards", "centrid", "--auto_agree"], empty_dsn))
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'document_chunks' AND column_name = 'user_id'"
        ) == 0
        users = [await create_user(conn) for _ in range(2)]
        chunks = {}
        for user in users:
            doc = await insert_document(conn, user)
            for i in range(3):
                chunks[await insert_chunk(conn, doc, i)] = user
        ok(run_piccolo(["migrations", "forwards", "all"], empty_dsn))
        stored = {str(r["id"]): str(r["user_id"]) for r in await conn.fetch("SELECT id, user_id FROM document_chunks")}
        assert stored == chunks
    finally:
        await conn.close()
