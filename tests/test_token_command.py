"""`piccolo centrid token` through the real CLI (issue 7, defect 9):
`--ttl 60` and `--ttl=60`, options in any order, and a service key
without `sub`."""

from __future__ import annotations

import uuid

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.support import run_piccolo

USER = str(uuid.UUID(int=7))


def _claims(args: list[str], dsn: str) -> dict[str, object]:
    result = run_piccolo(["centrid", "token", *args], dsn, CENTRID_JWT_SECRET=TEST_JWT_SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    token = result.stdout.strip().splitlines()[-1]
    claims: dict[str, object] = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    return claims


@pytest.mark.parametrize(
    ("args", "role", "sub", "ttl"),
    [
        ([USER], "authenticated", USER, 3600),
        ([USER, "--ttl", "60"], "authenticated", USER, 60),
        ([USER, "--ttl=60"], "authenticated", USER, 60),
        ([USER, "--ttl", "60", "--role", "service_role"], "service_role", USER, 60),
        (["--ttl", "60", "--role", "service_role"], "service_role", None, 60),
        (["--role=service_role", "--ttl=120"], "service_role", None, 120),
        (["--role", "authenticated", USER, "--ttl", "90"], "authenticated", USER, 90),
    ],
)
def test_token_options_in_any_form(template_dsn: str, args: list[str], role: str, sub: str | None, ttl: int) -> None:
    claims = _claims(args, template_dsn)
    assert claims["role"] == role
    assert claims.get("sub") == sub
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == ttl
    assert (claims.get("aud") == "authenticated") == (role == "authenticated")


@pytest.mark.parametrize(
    "args",
    [[], ["--ttl", "60"], [USER, "--role", "anon"], [USER, "--ttl", "0"]],
)
def test_token_refuses_bad_input(template_dsn: str, args: list[str]) -> None:
    result = run_piccolo(["centrid", "token", *args], template_dsn, CENTRID_JWT_SECRET=TEST_JWT_SECRET)
    assert result.returncode != 0
    assert "eyJ" not in result.stdout
