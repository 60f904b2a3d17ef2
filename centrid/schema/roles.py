"""The database roles, named in one place.

Migrations create and grant to them, tokens select them, the request scope
switches to them and the pool logs in as the authenticator: every module
that names a role imports it from here, so a role can only be renamed (or
added) once, and mypy rejects a misspelt one.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# The roles a bearer token may carry (Supabase's three).
ApiRole = Literal["anon", "authenticated", "service_role"]
# Every role a request may run as: the API roles and Piccolo Admin's.
Role = Literal[ApiRole, "centrid_admin"]

ANON: Final[ApiRole] = "anon"
AUTHENTICATED: Final[ApiRole] = "authenticated"
SERVICE_ROLE: Final[ApiRole] = "service_role"
ADMIN_ROLE: Final[Role] = "centrid_admin"
# The login of the request pool: owns nothing, may only become the roles above.
AUTHENTICATOR_ROLE: Final = "centrid_authenticator"

API_ROLES: tuple[ApiRole, ...] = get_args(ApiRole)
ALL_ROLES: tuple[Role, ...] = (*API_ROLES, ADMIN_ROLE)
