"""Pure logic, no database: token verification, cursor encoding, the
security declarations rendered to SQL, database-error mapping, and the
environment parsing of CORS origins.

Nothing here requests the `cluster`, `db` or `client` fixtures (all of them
opt-in, none autouse), so `python -m pytest tests/test_pure_logic.py` runs
in about a second without starting PostgreSQL. These catch a broken rule
where it is written; the HTTP and SQL tests prove the same rules end to end.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from typing import Any

import asyncpg
import jwt
import orjson
import pytest

from centrid.api.db_errors import map_database_error
from centrid.config import Settings
from centrid.errors import ApiError, error_body
from centrid.queries.rows import InvalidCursor, decode_cursor, encode_cursor
from centrid.request.claims import ANON
from centrid.request.tokens import InvalidToken, caller_from_authorization, mint_token
from centrid.schema.security import ALL_ROLES, CURRENT_UID, Policy, TableSecurity
from centrid.schema.render import policy_sql, security_sql, table_backwards_sql, table_forwards_sql
from centrid.schema.tables import SECURITY
from tests.api_support import DROP, forge, user_claims

SECRET = "pure-logic-test-secret-" + "0123456789" * 5  # 73 bytes: long enough for HS512 too
USER = str(uuid.uuid4())

# --- token verification ---------------------------------------------------------------


def _hs256(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm=algorithm)


def _verify(header: str | None) -> Any:
    return caller_from_authorization(header, SECRET)


def test_a_minted_user_token_verifies_to_its_user() -> None:
    caller = _verify("Bearer " + mint_token(USER, "authenticated", SECRET))
    assert (caller.role, caller.sub) == ("authenticated", USER)
    assert caller.claims["aud"] == "authenticated"


def test_no_header_is_anon_and_an_anon_token_is_anon() -> None:
    assert _verify(None) == ANON
    now = int(time.time())
    assert _verify(_hs256({"role": "anon", "exp": now + 60})) == ANON


def test_service_role_with_and_without_sub() -> None:
    now = int(time.time())
    keyless = _verify(_hs256({"role": "service_role", "exp": now + 60}))
    assert (keyless.role, keyless.sub) == ("service_role", None)
    named = _verify(_hs256({"role": "service_role", "sub": USER, "exp": now + 60}))
    assert (named.role, named.sub) == ("service_role", USER)


def test_the_scheme_is_case_insensitive_and_aud_may_be_a_list() -> None:
    assert _verify("bearer " + mint_token(USER, "authenticated", SECRET)).sub == USER
    assert _verify(_hs256(user_claims(USER, aud=["other", "authenticated"]))).sub == USER


def _refused() -> dict[str, str]:
    now = int(time.time())
    good = user_claims(USER)
    return {
        "alg none, unsigned": "Bearer " + forge(good, alg="none", sign_with=None, secret=SECRET),
        "alg none, signed": "Bearer " + forge(good, alg="none", secret=SECRET),
        "HS512": _hs256(good, algorithm="HS512"),
        "HS384": _hs256(good, algorithm="HS384"),
        "RS256 header over an HMAC signature": "Bearer " + forge(good, alg="RS256", secret=SECRET),
        "wrong secret": _hs256(good, secret="another-secret-0123456789-0123456789-abcdef"),
        "expired": _hs256(user_claims(USER, exp=now - 120)),
        "exp missing": _hs256(user_claims(USER, exp=DROP)),
        "exp not a number": _hs256(user_claims(USER, exp="later")),
        "not yet valid": _hs256(user_claims(USER, nbf=now + 3600)),
        "role missing": _hs256(user_claims(USER, role=DROP)),
        "role postgres": _hs256(user_claims(USER, role="postgres")),
        "role centrid_admin": _hs256(user_claims(USER, role="centrid_admin")),
        "role as a list": _hs256(user_claims(USER, role=["authenticated"])),
        "aud missing": _hs256(user_claims(USER, aud=DROP)),
        "aud anon": _hs256(user_claims(USER, aud="anon")),
        "aud list without authenticated": _hs256(user_claims(USER, aud=["anon", "x"])),
        "sub missing": _hs256(user_claims(None)),
        "sub not a UUID": _hs256(user_claims("alice")),
        "sub an integer": _hs256({**user_claims(None), "sub": 7}),
        "service_role, sub not a UUID": _hs256({"role": "service_role", "sub": "svc", "exp": now + 60}),
        "service_role expired": _hs256({"role": "service_role", "exp": now - 120}),
        "Basic scheme": "Basic " + jwt.encode(good, SECRET, algorithm="HS256"),
        "no scheme": jwt.encode(good, SECRET, algorithm="HS256"),
        "Bearer, empty": "Bearer ",
        "two tokens": _hs256(good) + " " + jwt.encode(good, SECRET, algorithm="HS256"),
        "garbage": "Bearer not.a.jwt",
        "empty header": "",
    }


@pytest.mark.parametrize("name", sorted(_refused()))
def test_a_bad_token_is_refused(name: str) -> None:
    with pytest.raises(InvalidToken):
        _verify(_refused()[name])


def test_a_refusal_never_echoes_the_token() -> None:
    header = _hs256(user_claims(USER, exp=int(time.time()) - 60))
    with pytest.raises(InvalidToken) as caught:
        _verify(header)
    assert header.split(".")[2] not in str(caught.value) and USER not in str(caught.value)


# --- cursors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        datetime.datetime(2026, 11, 25, 8, 30, 0, 123456, tzinfo=datetime.timezone.utc),
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
        datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-8))),
    ],
)
def test_a_cursor_round_trips_to_the_same_instant_and_row(at: datetime.datetime) -> None:
    row_id = uuid.uuid4()
    cursor = encode_cursor(at, row_id)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # safe in a query string as is
    decoded_at, decoded_id = decode_cursor(cursor)
    assert decoded_at == at and decoded_at.utcoffset() == datetime.timedelta(0)
    assert decoded_id == row_id


FIXED_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"  # fixed, so test ids are stable


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "%%%",
        _b64("2026-11-25T08:30:00+00:00"),  # no row id
        _b64(f"2026-11-25T08:30:00|{FIXED_ID}"),  # naive timestamp
        _b64(f"yesterday|{FIXED_ID}"),
        _b64("2026-11-25T08:30:00+00:00|not-a-uuid"),
        _b64(f"99999-01-01T00:00:00+00:00|{FIXED_ID}"),
        base64.urlsafe_b64encode(b"\xff\xfe\x00|").decode(),  # not UTF-8
    ],
)
def test_a_cursor_we_did_not_issue_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


def test_a_tampered_cursor_is_either_invalid_or_a_well_formed_position() -> None:
    """Cursors are positions, not secrets (RLS decides what a page holds), so
    an edited cursor need not be rejected; it must never raise anything but
    InvalidCursor (which the API answers with 422)."""
    cursor = encode_cursor(datetime.datetime(2026, 11, 25, 9, 0, 0, 250000, tzinfo=datetime.timezone.utc),
                           uuid.UUID(FIXED_ID))
    outcomes = {"invalid": 0, "valid": 0}
    for i in range(len(cursor)):
        for replacement in ("A", "_", "-", "9", "=", "."):
            tampered = cursor[:i] + replacement + cursor[i + 1 :]
            try:
                at, row_id = decode_cursor(tampered)
            except InvalidCursor:
                outcomes["invalid"] += 1
            else:
                assert at.tzinfo is not None and isinstance(row_id, uuid.UUID)
                outcomes["valid"] += 1
    assert outcomes["invalid"] > 0 and outcomes["valid"] > 0, outcomes
    assert issubclass(InvalidCursor, ValueError)


# --- security declarations rendered to SQL ---------------------------------------------


def _by_name() -> dict[str, TableSecurity]:
    return {s.tablename: s for s in SECURITY}


def test_the_six_tables_are_declared() -> None:
    assert sorted(_by_name()) == sorted(
        ["user_profiles", "documents", "document_chunks", "agent_requests", "agent_sessions", "usage_events"]
    )


@pytest.mark.parametrize("table", ["user_profiles", "documents", "document_chunks", "agent_requests", "agent_sessions"])
def test_an_update_policy_checks_the_new_row_as_well_as_the_old(table: str) -> None:
    sec = _by_name()[table]
    (update,) = [p for p in sec.policies if p.command == "UPDATE" and "authenticated" in p.roles]
    assert update.using and update.with_check, update
    assert CURRENT_UID in update.with_check
    rendered = policy_sql(table, update)
    assert f"FOR UPDATE TO authenticated\n    USING ({update.using})\n    WITH CHECK ({update.with_check});" in rendered


def test_every_write_policy_for_users_has_with_check_and_none_is_for_all() -> None:
    for sec in SECURITY:
        for policy in sec.policies:
            assert policy.command in ("SELECT", "INSERT", "UPDATE", "DELETE"), policy  # never FOR ALL
            if policy.command in ("INSERT", "UPDATE"):
                assert policy.with_check and CURRENT_UID in policy.with_check, (sec.tablename, policy)
            if policy.command in ("SELECT", "UPDATE", "DELETE"):
                assert policy.using and CURRENT_UID in policy.using, (sec.tablename, policy)


def test_users_may_never_write_an_ownership_column() -> None:
    """Column grants are the first wall against moving a row to someone else."""
    owner_columns = {"user_id", "document_id"}
    for sec in SECURITY:
        for grant in sec.grants:
            if grant.role in ("anon", "authenticated") and "UPDATE" in grant.privileges:
                assert grant.columns, f"{sec.tablename}: table-wide UPDATE for {grant.role}"
                assert not owner_columns & set(grant.columns), (sec.tablename, grant)
    usage = _by_name()["usage_events"]
    assert not any(g.role == "authenticated" and set(g.privileges) - {"SELECT"} for g in usage.grants)


def test_rendered_table_security_revokes_first_then_grants_and_enables_rls() -> None:
    sql = table_forwards_sql(_by_name()["documents"])
    lines = sql.splitlines()
    revoke = lines.index(f"REVOKE ALL ON public.documents FROM PUBLIC, {', '.join(ALL_ROLES)};")
    first_grant = next(i for i, line in enumerate(lines) if line.startswith("GRANT "))
    assert revoke < first_grant
    assert "ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY;" in lines
    assert "ALTER TABLE public.documents ALTER COLUMN user_id SET DEFAULT auth.uid();" in lines
    assert "GRANT SELECT, DELETE ON public.documents TO authenticated;" in lines
    update_grant = next(line for line in lines if line.startswith("GRANT UPDATE (") and line.endswith("TO authenticated;"))
    assert "user_id" not in update_grant and "filename" in update_grant
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON public.documents TO service_role;" in lines
    assert any(line.startswith("ALTER TABLE public.documents ADD COLUMN search_vector tsvector GENERATED ALWAYS")
               for line in lines)
    assert "CREATE POLICY documents_update_own ON public.documents AS PERMISSIVE FOR UPDATE TO authenticated" in sql
    assert "FOR ALL" not in sql and "BYPASSRLS" not in sql


def test_rendered_chunk_policies_compare_the_owner_copied_from_the_document() -> None:
    sql = table_forwards_sql(_by_name()["document_chunks"])
    assert f"WITH CHECK (user_id = {CURRENT_UID})" in sql
    # The copy is the database's: no default a client could rely on, a
    # trigger that sets it from the document, a key that ties the two.
    assert "SET DEFAULT auth.uid()" not in sql
    assert "NEW.user_id := (SELECT p.user_id FROM public.documents AS p WHERE p.id = NEW.document_id);" in sql
    assert ("FOREIGN KEY (document_id, user_id) REFERENCES public.documents (id, user_id) "
            "ON UPDATE CASCADE ON DELETE CASCADE;") in sql
    # Existing rows are filled in before the column becomes NOT NULL.
    assert sql.index("UPDATE public.document_chunks AS c SET user_id") < sql.index("ALTER COLUMN user_id SET NOT NULL")


def test_backwards_undoes_what_forwards_creates() -> None:
    for sec in SECURITY:
        forwards, backwards = table_forwards_sql(sec), table_backwards_sql(sec)
        for policy in sec.policies:
            assert f"CREATE POLICY {policy.name} ON public.{sec.tablename}" in forwards
            assert f"DROP POLICY IF EXISTS {policy.name} ON public.{sec.tablename};" in backwards
        assert f"ALTER TABLE public.{sec.tablename} DISABLE ROW LEVEL SECURITY;" in backwards


def test_the_whole_security_migration_keeps_internal_tables_out_of_reach() -> None:
    forwards, backwards = security_sql(SECURITY, shared=True)
    for table in ("migration", "piccolo_user", "sessions"):
        assert f"REVOKE ALL ON public.{table} FROM PUBLIC, anon, authenticated, service_role;" in forwards
        assert f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;" in forwards
    # Shared functions come first (tables' triggers use them) and go last.
    assert forwards.index("CREATE FUNCTION public.centrid_touch_updated_at()") < forwards.index("-- user_profiles")
    assert backwards.rstrip().endswith("DROP FUNCTION IF EXISTS public.centrid_touch_updated_at();")
    # Children are undone before their parents.
    assert backwards.index("-- document_chunks") < backwards.index("-- documents")


def test_a_policy_without_a_check_renders_none() -> None:
    sql = policy_sql("t", Policy("t_select_own", "SELECT", ("authenticated", "anon"), using="x = 1"))
    assert sql == "CREATE POLICY t_select_own ON public.t AS PERMISSIVE FOR SELECT TO authenticated, anon\n    USING (x = 1);"


# --- database errors -> statuses, without PostgreSQL's text ------------------------------


def _pg(cls: type[asyncpg.PostgresError], message: str, **fields: str) -> asyncpg.PostgresError:
    exc = cls(message)
    for name, value in fields.items():
        setattr(exc, name, value)
    return exc


# (exception, role, expected status, code, field named in details or None)
_MAPPINGS: dict[str, tuple[asyncpg.PostgresError, str, int, str, str | None]] = {
    "privilege as anon": (
        _pg(asyncpg.exceptions.InsufficientPrivilegeError, "permission denied for table documents"),
        "anon", 401, "unauthorized", None),
    "privilege as a user": (
        _pg(asyncpg.exceptions.InsufficientPrivilegeError, "permission denied for table user_profiles"),
        "authenticated", 403, "forbidden", None),
    "row-level security": (
        _pg(asyncpg.exceptions.InsufficientPrivilegeError,
            'new row violates row-level security policy for table "documents"', table_name="documents"),
        "authenticated", 403, "forbidden", None),
    "duplicate chunk index": (
        _pg(asyncpg.exceptions.UniqueViolationError,
            'duplicate key value violates unique constraint "document_chunks_document_id_chunk_index_key"',
            constraint_name="document_chunks_document_id_chunk_index_key", table_name="document_chunks"),
        "authenticated", 409, "conflict", "chunk_index"),
    "check": (
        _pg(asyncpg.exceptions.CheckViolationError,
            'new row for relation "documents" violates check constraint "documents_file_size_check"',
            constraint_name="documents_file_size_check", table_name="documents"),
        "authenticated", 422, "validation_error", "file_size"),
    "not null": (
        _pg(asyncpg.exceptions.NotNullViolationError,
            'null value in column "processing_status" of relation "documents" violates not-null constraint',
            column_name="processing_status", table_name="documents"),
        "authenticated", 422, "validation_error", "processing_status"),
    "foreign key": (
        _pg(asyncpg.exceptions.ForeignKeyViolationError,
            'insert or update on table "documents" violates foreign key constraint "documents_user_id_fkey"',
            constraint_name="documents_user_id_fkey", table_name="documents"),
        "service_role", 422, "validation_error", "user_id"),
    "out of range": (
        _pg(asyncpg.exceptions.NumericValueOutOfRangeError, 'value "99999999999" is out of range for type integer'),
        "authenticated", 422, "validation_error", None),
    "statement timeout": (
        _pg(asyncpg.exceptions.QueryCanceledError, "canceling statement due to statement timeout"),
        "authenticated", 503, "timeout", None),
    "serialization": (
        _pg(asyncpg.exceptions.SerializationError, "could not serialize access due to concurrent update"),
        "authenticated", 409, "conflict", None),
    "deadlock": (
        _pg(asyncpg.exceptions.DeadlockDetectedError, "deadlock detected"),
        "authenticated", 409, "conflict", None),
    "shutting down": (
        _pg(asyncpg.exceptions.AdminShutdownError, "terminating connection due to administrator command"),
        "authenticated", 503, "database_unavailable", None),
    "too many connections": (
        _pg(asyncpg.exceptions.TooManyConnectionsError, "sorry, too many clients already"),
        "authenticated", 503, "database_unavailable", None),
    "unmapped": (
        _pg(asyncpg.exceptions.UndefinedTableError, 'relation "documents_secret" does not exist'),
        "authenticated", 500, "internal_error", None),
}


def _fields_named(error: ApiError) -> set[str]:
    details = error.details if isinstance(error.details, list) else []
    return {d["field"] for d in details if isinstance(d, dict) and d.get("field")}


@pytest.mark.parametrize("case", sorted(_MAPPINGS))
def test_database_errors_map_to_the_contracts_statuses(case: str) -> None:
    exc, role, status, code, field = _MAPPINGS[case]
    error = map_database_error(exc, role)
    assert (error.status, error.code) == (status, code)
    if field is not None:
        assert _fields_named(error) == {field}


@pytest.mark.parametrize("case", sorted(_MAPPINGS))
def test_an_error_body_never_carries_postgresqls_text(case: str) -> None:
    exc, role, *_ = _MAPPINGS[case]
    body = error_body(*_parts(map_database_error(exc, role))).decode()
    assert str(exc) not in body, body
    for name in ("table_name", "constraint_name"):
        value = getattr(exc, name, None)
        if value:
            assert f'"{value}"' not in body and value not in orjson.loads(body)["error"]["message"], body
    for fragment in ("violates", "relation", "constraint", "permission denied", "row-level security policy",
                     "documents_", "document_chunks_", "deadlock detected", "administrator command"):
        assert fragment not in body, (fragment, body)


def _parts(error: ApiError) -> tuple[str, str, Any]:
    return error.code, error.message, error.details


def test_a_privilege_error_names_the_fields_the_caller_sent() -> None:
    exc = _pg(asyncpg.exceptions.InsufficientPrivilegeError, "permission denied for table user_profiles")
    error = map_database_error(exc, "authenticated", ["plan_type", "name"])
    assert error.details == {"fields": ["name", "plan_type"]}


# --- CENTRID_CORS_ORIGINS ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ()),
        ("", ()),
        ("   ", ()),
        (",, ,", ()),
        ("https://app.example.test", ("https://app.example.test",)),
        ("https://a.example, https://b.example", ("https://a.example", "https://b.example")),
        (" https://a.example ,,https://b.example:8443,  ", ("https://a.example", "https://b.example:8443")),
        ("http://localhost:5173,https://a.example", ("http://localhost:5173", "https://a.example")),
    ],
)
def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: tuple[str, ...]) -> None:
    if raw is None:
        monkeypatch.delenv("CENTRID_CORS_ORIGINS", raising=False)
    else:
        monkeypatch.setenv("CENTRID_CORS_ORIGINS", raw)
    assert Settings.from_env().cors_origins == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, True), ("", True), ("1", True), ("yes", True), ("0", False), ("false", False), (" OFF ", False),
     ("no", False)],
)
def test_auto_migrate_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: bool) -> None:
    if raw is None:
        monkeypatch.delenv("CENTRID_AUTO_MIGRATE", raising=False)
    else:
        monkeypatch.setenv("CENTRID_AUTO_MIGRATE", raw)
    assert Settings.from_env().auto_migrate is expected
