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

from centrid.request.claims import ANON, Caller
from centrid.schema import roles
from centrid.schema.roles import API_ROLES

ALGORITHM = "HS256"
TOKEN_ROLES = API_ROLES
# Supabase's audience for user tokens (it happens to spell the role's name).
AUDIENCE = "authenticated"


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
    if role == roles.AUTHENTICATED:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if AUDIENCE not in audiences:
            raise InvalidToken("token audience must be 'authenticated'")
        if not _valid_uuid(sub):
            raise InvalidToken("token subject must be a user id (UUID)")
    elif sub is not None and not _valid_uuid(sub):
        raise InvalidToken("token subject must be a user id (UUID)")
    if role == roles.ANON:
        return ANON
    return Caller(role=role, sub=sub, claims=claims)


class TokenCache:
    """Verified tokens, so a client's repeated token is checked once.

    Keyed by (secret, token): a token is only ever served from the cache
    under the secret that verified it, and only while `time.time()` is
    before its `exp` (PyJWT's own rule, no leeway), so expiry is exactly that
    of verification. Only successes are kept: a token that fails (bad
    signature, wrong secret, expired, bad claims) is verified again every
    time. Revocation stays that of a stateless JWT: there is none before
    `exp`, with or without the cache. Bounded: when full, the oldest entry
    goes first. `max_size` 0 turns it off.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: dict[tuple[str, str], tuple[float, Caller]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def caller(self, header: str | None, secret: str) -> Caller:
        """caller_from_authorization, through the cache."""
        if header is None or self.max_size <= 0:
            return caller_from_authorization(header, secret)
        key = (secret, header)
        entry = self._entries.get(key)
        if entry is not None:
            if time.time() < entry[0]:
                return entry[1]
            del self._entries[key]
        caller = caller_from_authorization(header, secret)
        self._remember(key, caller)
        return caller

    def _remember(self, key: tuple[str, str], caller: Caller) -> None:
        exp = caller.claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            return  # anon (claims not kept) or an exp we would rather not interpret
        while len(self._entries) >= self.max_size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (float(int(exp)), caller)  # PyJWT compares int(exp) too


def mint_token(user_id: str | None, role: str, secret: str, ttl_seconds: int = 3600) -> str:
    """A token as Supabase would issue it (used by `piccolo centrid token`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl_seconds}
    if user_id is not None:
        claims["sub"] = user_id
    if role == roles.AUTHENTICATED:
        claims["aud"] = AUDIENCE
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
