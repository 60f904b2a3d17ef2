"""Bearer tokens -> Caller, exactly as Supabase issues them.

HS256 only (`none` and every other algorithm are refused by PyJWT's
allow-list), `exp` always required. The `role` claim picks the database
role; `authenticated` needs a UUID `sub` and `aud` "authenticated".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from centrid.scope.claims import ANON, Caller

ALGORITHM = "HS256"
TOKEN_ROLES = ("anon", "authenticated", "service_role")


class InvalidToken(Exception):
    """The request carries credentials we cannot accept (-> 401)."""


def _valid_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def caller_from_authorization(header: str | None, secret: str) -> Caller:
    if header is None:
        return ANON
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Authorization header must be 'Bearer <token>'")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("token is invalid") from exc
    role = claims.get("role")
    if role not in TOKEN_ROLES:
        raise InvalidToken("token role is not accepted")
    sub = claims.get("sub")
    if role == "authenticated":
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if "authenticated" not in audiences:
            raise InvalidToken("token audience must be 'authenticated'")
        if not _valid_uuid(sub):
            raise InvalidToken("token subject must be a user id (UUID)")
    elif sub is not None and not _valid_uuid(sub):
        raise InvalidToken("token subject must be a user id (UUID)")
    if role == "anon":
        return ANON
    return Caller(role=role, sub=sub, claims=claims)


def mint_token(user_id: str | None, role: str, secret: str, ttl_seconds: int = 3600) -> str:
    """A token as Supabase would issue it (used by `piccolo centrid token`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl_seconds}
    if user_id is not None:
        claims["sub"] = user_id
    if role == "authenticated":
        claims["aud"] = "authenticated"
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
