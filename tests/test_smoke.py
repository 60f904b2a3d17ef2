from tests.conftest import MigratedDB
from tests.support import create_user, fetch_as


async def test_profile_created_and_visible_to_owner_only(db: MigratedDB) -> None:
    alice = await create_user(db.owner, name="Alice")
    bob = await create_user(db.owner)
    rows = await fetch_as(db.dsn, "authenticated", alice, "SELECT user_id::text, name FROM user_profiles")
    assert [(r["user_id"], r["name"]) for r in rows] == [(alice, "Alice")]
    rows = await fetch_as(db.dsn, "authenticated", bob, "SELECT name FROM user_profiles")
    assert [r["name"] for r in rows] == [None]
