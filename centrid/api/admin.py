"""Piccolo Admin over the registered tables, behind Piccolo's own session login.

Its requests run in the request scope as `centrid_admin` (BYPASSRLS, grants
on the registered tables and on the admin login tables), whatever bearer token they
carry: admin access comes only from an admin login (`piccolo user create`),
checked by Piccolo's session middleware on every `/admin/api/...` request.

Three adjustments to a stock `create_admin`:

- Owner columns. `user_id` is a foreign key to Supabase's `auth.users`,
  which `centrid_admin` may not read (no grants there; on Supabase that
  table belongs to the auth service). Piccolo Admin joins every foreign key
  to its target to show a readable value and links it to the target's admin
  page, so the admin sees the registered tables through copies of their classes in
  which each `auth.users` key is a plain UUID column: the same table and
  column, nothing joined.
- CSRF under HTTPS. Piccolo's CSRF middleware, on a secure request, also
  wants the Origin (or Referer) host to be in `allowed_hosts`, a fixed list;
  with none, every login and write would be refused. Here the allowed host
  is the one the request itself was sent to (its Host header): a
  same-origin check that needs no configuration. A proxy in front must pass
  the Host header through unchanged.
- `usage_events` is an insert-only ledger (the database grants no UPDATE or
  DELETE to anyone); the admin refuses those up front with a clear message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, overload

from piccolo.apps.user.tables import BaseUser
from piccolo.columns import UUID, ForeignKey
from piccolo.table import Table
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.validators import Validators
from piccolo_api.session_auth.tables import SessionsBase
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from centrid.config import Settings
from centrid.request.state import request_headers
from centrid.schema.roles import ADMIN_ROLE
from centrid.schema.security import TableSecurity
from centrid.schema.tables import SECURITY, AuthUser

# ---------------------------------------------------------------------------
# Tables as the admin sees them.


def _references_auth_users(column: ForeignKey[Any]) -> bool:
    target: type[Table] = column._foreign_key_meta.resolved_references
    return target is AuthUser


def admin_table(table: type[Table]) -> type[Table]:
    """`table`, with every foreign key to auth.users as a plain UUID column
    (same name, same nullability). Tables without one come back unchanged."""
    overrides: dict[str, Any] = {}
    for column in table._meta.foreign_key_columns:
        if _references_auth_users(column):
            overrides[column._meta.name] = UUID(
                null=column._meta.null,
                default=None,
                unique=column._meta.unique,
                help_text="The owning auth.users id.",
            )
    if not overrides:
        return table
    meta = table._meta
    return type(
        table.__name__, (table,), overrides, tablename=meta.tablename, schema=meta.schema, help_text=meta.help_text
    )


def _insert_only(sec: TableSecurity) -> bool:
    """The declaration grants the admin role neither UPDATE nor DELETE (the
    usage ledger): the admin answers 405 instead of a database error."""
    granted = {p for g in sec.grants if g.role == ADMIN_ROLE for p in g.privileges}
    return not granted & {"UPDATE", "DELETE"}


def _ledger_validators(tablename: str) -> Validators:
    def refuse(piccolo_crud: Any, request: Request) -> None:
        raise HTTPException(
            status_code=405,
            detail=f"{tablename} is an insert-only ledger: rows cannot be changed or deleted.",
        )

    return Validators(put_single=[refuse], patch_single=[refuse], delete_single=[refuse], delete_all=[refuse])


def admin_tables() -> list[TableConfig]:
    """Every registered table (centrid.schema.tables.SECURITY)."""
    return [
        TableConfig(
            table_class=admin_table(sec.table),
            validators=_ledger_validators(sec.tablename) if _insert_only(sec) else None,
        )
        for sec in SECURITY
    ]


# ---------------------------------------------------------------------------
# CSRF: the request's own host is the allowed one.

_request_host: ContextVar[str | None] = ContextVar("centrid_admin_request_host", default=None)


class RequestHost(Sequence[str]):
    """`allowed_hosts` for Piccolo's CSRF middleware: contains exactly the
    hostname of the request being handled (set by `SameHostAdmin`)."""

    def _hosts(self) -> tuple[str, ...]:
        host = _request_host.get()
        return (host,) if host else ()

    def __contains__(self, value: object) -> bool:
        return value in self._hosts()

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._hosts()[index]

    def __len__(self) -> int:
        return len(self._hosts())

    def __iter__(self) -> Iterator[str]:
        return iter(self._hosts())


def _hostname(scope: Scope) -> str | None:
    host = request_headers(scope).get("host")
    if host is None:
        return None
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else None
    return host.rsplit(":", 1)[0] if ":" in host else host


class SameHostAdmin:
    """Runs the admin with the request's hostname visible to `RequestHost`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _request_host.set(_hostname(scope) if scope["type"] == "http" else None)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_host.reset(token)


def create_admin_app(cfg: Settings) -> Any:
    admin = create_admin(
        tables=admin_tables(),
        auth_table=BaseUser,
        session_table=SessionsBase,
        site_name="Centrid admin",
        # Secure session cookie (HTTPS only) when serving over HTTPS.
        production=cfg.admin_secure_cookies,
        # The only foreign key target besides our own tables is auth.users,
        # which the admin does not show (see admin_table).
        auto_include_related=False,
        allowed_hosts=RequestHost(),
    )
    return SameHostAdmin(admin)
