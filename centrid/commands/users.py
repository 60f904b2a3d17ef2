"""`piccolo centrid create_user` and `piccolo centrid token`."""

from __future__ import annotations

import sys
import uuid

import orjson

from centrid.scope.secret import jwt_secret
from centrid.scope.tokens import mint_token
from centrid.tables.auth import AuthUser


async def create_user(email: str, name: str | None = None) -> None:
    """Create an auth user (its profile is made by the database trigger) and print its id.

    :param email:
        The user's email address.
    :param name:
        Display name, stored in raw_user_meta_data and copied to the profile.
    """
    meta = orjson.dumps({"name": name}).decode() if name is not None else None
    rows = await AuthUser.raw(
        "INSERT INTO auth.users (email, raw_user_meta_data) VALUES ({}, {}::jsonb) RETURNING id", email, meta
    ).run()
    print(rows[0]["id"])


def token(user_id: str, role: str = "authenticated", ttl: int = 3600) -> None:
    """Print a signed JWT for USER_ID with the configured secret.

    :param user_id:
        The auth.users id the token speaks for (its `sub`).
    :param role:
        authenticated (default) or service_role.
    :param ttl:
        Lifetime in seconds (default 3600).
    """
    if role not in ("authenticated", "service_role"):
        print("role must be authenticated or service_role", file=sys.stderr)
        raise SystemExit(2)
    try:
        uuid.UUID(str(user_id))
    except ValueError:
        print("USER_ID must be a UUID", file=sys.stderr)
        raise SystemExit(2) from None
    if int(ttl) <= 0:
        print("ttl must be positive", file=sys.stderr)
        raise SystemExit(2)
    print(mint_token(str(user_id), role, jwt_secret().value, ttl_seconds=int(ttl)))
