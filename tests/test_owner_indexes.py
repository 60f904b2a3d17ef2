"""Per-owner HNSW indexes (centrid.schema.owner_indexes) on a real database:
the command creates one for each large owner and drops it with hysteresis;
`piccolo centrid check` accepts exactly that shape; a large owner's search
goes through their own index, still gives their true top-k in the crowding
case, and nobody else's search sees their chunks."""

from __future__ import annotations

import uuid

import httpx
import numpy as np

from centrid.queries import search_lists
from centrid.schema import owner_indexes
from centrid.schema.drift import find_drift
from centrid.schema.tables import SECURITY, TABLE_CLASSES
from tests.conftest import MigratedDB
from tests.retrieval_support import E0, corpus, crowded_caller, exact_top_k, noisy, search, vtext
from tests.support import acting_as, create_user, run_piccolo


async def _index_names(db: MigratedDB) -> set[str]:
    rows = await db.owner.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'document_chunks' AND indexname LIKE 'document\\_chunks\\_owner\\_%'"
    )
    return {r["indexname"] for r in rows}


def _run(db: MigratedDB, *args: str) -> tuple[int, str]:
    result = run_piccolo(["centrid", "owner_indexes", *args], db.dsn)
    return result.returncode, result.stdout + result.stderr


async def _owner_with(db: MigratedDB, client: httpx.AsyncClient, n: int, seed: int) -> tuple[str, list[str]]:
    rng = np.random.default_rng(seed)
    user = await create_user(db.owner)
    vectors = noisy(rng, np.array(E0), 1.0, n)
    _, ids = await corpus(db, client, user, [(f"c {i}", [float(x) for x in v]) for i, v in enumerate(vectors)])
    return user, ids


async def _route_as(user: str, document_ids: tuple[uuid.UUID, ...] | None = None) -> search_lists.Route:
    """search_lists.route as `user` runs it in a request."""
    import piccolo_conf

    from centrid.request.claims import Caller, enter_scope

    async with piccolo_conf.DB.transaction() as txn:
        await enter_scope(txn.connection, Caller(role="authenticated", sub=user))
        return await search_lists.route(search_lists.Scope(owner=uuid.UUID(user), document_ids=document_ids), 100)


async def test_the_command_indexes_large_owners_and_drops_with_hysteresis(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    big, big_ids = await _owner_with(db, client, 40, seed=1)
    small, _ = await _owner_with(db, client, 15, seed=2)
    name = owner_indexes.index_name(uuid.UUID(big))

    code, output = _run(db, "--threshold", "30", "--dry_run")
    assert code == 0, output
    assert f"create {name}" in output and "1 would be created" in output
    assert await _index_names(db) == set()  # a dry run changes nothing

    code, output = _run(db, "--threshold=30")
    assert code == 0, output
    assert await _index_names(db) == {name}
    assert owner_indexes.index_name(uuid.UUID(small)) not in output
    # Built concurrently and valid, on exactly the owner's rows.
    row = await db.owner.fetchrow(
        "SELECT i.indisvalid, pg_get_expr(i.indpred, i.indrelid) AS predicate FROM pg_index i "
        "WHERE i.indexrelid = $1::regclass", name)
    assert row is not None and row["indisvalid"] and row["predicate"] == f"(user_id = '{big}'::uuid)"
    assert await find_drift(db.owner, TABLE_CLASSES, SECURITY) == []

    code, output = _run(db, "--threshold=30")  # idempotent
    assert code == 0 and "0 were created, 0 dropped" in output, output

    # 20 of 40 left: under the threshold, at half of it: kept.
    await db.owner.execute("DELETE FROM document_chunks WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in big_ids[:20]])
    _run(db, "--threshold=30")
    assert await _index_names(db) == {name}
    # 14 left: under half: dropped.
    await db.owner.execute("DELETE FROM document_chunks WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in big_ids[20:26]])
    code, output = _run(db, "--threshold=30")
    assert code == 0 and f"drop {name}" in output, output
    assert await _index_names(db) == set()


async def test_the_command_refuses_a_bad_threshold(db: MigratedDB) -> None:
    code, output = _run(db, "--threshold=0")
    assert code == 2 and "--threshold must be at least 1" in output, output
    assert "Traceback" not in output


async def test_check_reports_an_index_under_the_prefix_of_another_shape(db: MigratedDB) -> None:
    owner = uuid.UUID(await create_user(db.owner))
    name = owner_indexes.index_name(owner)
    await db.owner.execute(f"CREATE INDEX {name} ON document_chunks (user_id) WHERE user_id = '{owner}'::uuid")
    diffs = await find_drift(db.owner, TABLE_CLASSES, SECURITY)
    assert [str(d) for d in diffs] == [
        f"document_chunks: index {name}: expected none, found btree (user_id) WHERE (user_id = '{owner}'::uuid)"
    ]
    # The maintenance run replaces it with the expected one only for a large
    # owner; this owner has no chunks, so it goes.
    todo = await owner_indexes.plan(db.owner, threshold=1)
    assert todo.drop == (name,) and todo.create == ()


async def test_a_large_owners_search_uses_their_index_and_stays_exact(
    db: MigratedDB, client: httpx.AsyncClient
) -> None:
    """The crowding case with the caller's own index: their true top-k,
    through their own index; and another user's search never sees them."""
    alice, ids, query = await crowded_caller(db, client, seed=21)
    bob, bob_ids = await _owner_with(db, client, 20, seed=22)
    # Alice's index only (the command would index the crowd's users too).
    todo = owner_indexes.Plan(create=((uuid.UUID(alice), 1), (uuid.UUID(bob), 1)), drop=())
    await owner_indexes.apply(db.owner, todo)
    await db.owner.execute("ANALYZE document_chunks")

    # The search's route: Alice's index; a crowd user's chunks are counted.
    assert await _route_as(alice) == search_lists.Route(owner_lists=1, candidates=None)
    crowd_user = await db.owner.fetchval("SELECT user_id FROM documents WHERE filename = 'crowd' LIMIT 1")
    assert await _route_as(str(crowd_user)) == search_lists.Route(owner_lists=None, candidates=40)
    # With document_ids the search is exact over those documents: counted.
    doc = await db.owner.fetchval("SELECT id FROM documents WHERE user_id = $1", uuid.UUID(alice))
    assert await _route_as(alice, (doc,)) == search_lists.Route(owner_lists=None, candidates=15)

    async with acting_as(db.dsn, "authenticated", alice) as conn:
        # Sorting off: only an index can order the rows, and it must be
        # Alice's, usable under RLS because the hint is a constant.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_sort = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT id FROM document_chunks c WHERE c.user_id = $1 "
            f"ORDER BY ({owner_indexes.indexed_expression('extensions')}) "
            "OPERATOR(extensions.<=>) $2::text::extensions.vector LIMIT 20",
            uuid.UUID(alice), vtext(query)))
    assert owner_indexes.index_name(uuid.UUID(alice)) in plan, plan

    for k in (1, 10, 15, 20):
        r = await search(client, alice, {"embedding": query, "limit": k})
        got = [h["id"] for h in r.json()["items"]]
        assert got == await exact_top_k(db, alice, query, k), k
    for body in ({"embedding": query, "limit": 50}, {"q": "mine", "embedding": query, "limit": 50}):
        r = await search(client, bob, body)
        seen = {h["id"] for h in r.json()["items"]}
        assert seen and seen <= set(bob_ids) and not seen & set(ids), body


def test_lists_probes_and_staleness() -> None:
    """One list per 100 vectors; probes 4 sqrt(lists), never more than the
    lists; an index is rebuilt once its owner calls for more than twice or
    under half its lists."""
    assert [owner_indexes.lists_for(n) for n in (1, 149, 151, 10_000, 100_000)] == [1, 1, 2, 100, 1000]
    assert [owner_indexes.probes(lists) for lists in (1, 4, 100, 1000)] == [1, 4, 40, 127]
    assert not owner_indexes.stale(100, 10_000) and not owner_indexes.stale(100, 20_000)
    assert owner_indexes.stale(100, 20_100) and owner_indexes.stale(100, 4_900)
    assert not owner_indexes.stale(1, 40) and not owner_indexes.stale(1, 20)
