"""Piccolo Admin over the six tables, behind Piccolo's own session login.

Its requests run in the request scope as `centrid_admin` (BYPASSRLS, grants
on the six tables and on the admin login tables), whatever bearer token they
carry: admin access comes only from an admin login (`piccolo user create`).
"""

from __future__ import annotations

from typing import Any

from piccolo_admin.endpoints import create_admin
from piccolo_api.session_auth.tables import SessionsBase
from piccolo.apps.user.tables import BaseUser

from centrid.config import Settings
from centrid.tables import TABLE_CLASSES


def create_admin_app(cfg: Settings) -> Any:
    return create_admin(
        tables=list(TABLE_CLASSES),
        auth_table=BaseUser,
        session_table=SessionsBase,
        site_name="Centrid admin",
        production=cfg.admin_secure_cookies,
        auto_include_related=False,
    )
