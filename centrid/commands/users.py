"""`piccolo centrid create_user` and `piccolo centrid token`."""

from __future__ import annotations

import argparse
import uuid

import orjson

from centrid.db.piccolo_adapter import command_words
from centrid.request.secret import jwt_secret
from centrid.request.tokens import mint_token
from centrid.schema.tables.auth import AuthUser
from centrid.schema import roles


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


def _token_arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piccolo centrid token", description="Print a signed JWT.")
    parser.add_argument("user_id", nargs="?", help="the auth.users id (the token's sub)")
    parser.add_argument("--role", choices=(roles.AUTHENTICATED, roles.SERVICE_ROLE), default=roles.AUTHENTICATED)
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)  # Piccolo's own flag
    return parser


def _command_line(user_id: str, role: str, ttl: str) -> list[str]:
    """The words after `centrid token`: re-read from the command line,
    where targ would misread `--ttl 60` (centrid.db.piccolo_adapter), or,
    called from Python, rebuilt from the parameters."""
    words = command_words("centrid", "token")
    if words is not None:
        return words
    words = [user_id] if user_id else []
    if role:
        words.append(f"--role={role}")
    if ttl:
        words.append(f"--ttl={ttl}")
    return words


def token(user_id: str = "", role: str = "", ttl: str = "") -> None:
    """Print a signed JWT with the configured secret.

    Usage: piccolo centrid token [USER_ID] [--role authenticated|service_role] [--ttl SECONDS]
    (`--ttl 60` or `--ttl=60`, options in any order).

    :param user_id:
        The auth.users id the token speaks for (its `sub`); required unless
        --role service_role (a service key without sub, as Supabase's).
    :param role:
        authenticated (default) or service_role.
    :param ttl:
        Lifetime in seconds (default 3600).
    """
    parser = _token_arguments()
    options = parser.parse_args(_command_line(user_id, role, ttl))
    if options.user_id is None and options.role != roles.SERVICE_ROLE:
        parser.error("USER_ID is required for an authenticated token")
    if options.user_id is not None:
        try:
            uuid.UUID(options.user_id)
        except ValueError:
            parser.error("USER_ID must be a UUID")
    if options.ttl <= 0:
        parser.error("--ttl must be positive")
    print(mint_token(options.user_id, options.role, jwt_secret().value, ttl_seconds=options.ttl))
