"""The service behind PgBouncer in transaction pooling mode.

A real pgbouncer process sits between the app and the test database, with
fewer server connections than the app pool has clients, so consecutive
transactions of one app connection may land on different server connections
and one server connection serves many callers in turn. Everything a request sets
(claims, role, statement_timeout) is transaction-local, so nothing may leak
from one caller to the next. PgBouncer does not forward the `role` startup
parameter, but the request login defaults to anon at the role level, and
owns nothing itself, so a server connection outside a scope sees nothing.

Skips only when no pgbouncer binary is installed (.ci/run installs it when it
runs as root).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
import random
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import pytest

from centrid.db.engine import AUTHENTICATOR_ROLE
from tests.api_support import DOC, CallerOps, app_client, assert_only_callers_rows, seed_callers, service
from tests.conftest import AUTHENTICATOR_TEST_PASSWORD, MigratedDB
from tests.support import SIX_TABLES, bearer, create_user

SERVER_POOL_SIZE = 2  # PgBouncer's server connections for (database, request login)
APP_POOL_SIZE = 8  # the app's client connections to PgBouncer
ADMIN_USER = "centrid_bouncer_admin"  # PgBouncer's admin console login (exists only in PgBouncer)


def _pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Upstream:
    """Where the test database listens, as PgBouncer should reach it."""

    host: str  # a Unix socket directory or a host name
    port: int
    database: str

    @classmethod
    def from_dsn(cls, dsn: str) -> Upstream:
        parts = urlsplit(dsn)
        host = parts.hostname or parse_qs(parts.query).get("host", ["/tmp"])[0]
        return cls(host=host, port=parts.port or 5432, database=parts.path.lstrip("/"))


@dataclass
class Bouncer:
    port: int
    database: str  # the name clients use; PgBouncer maps it to the test database
    log: Path
    version: str

    def dsn(self, user: str = AUTHENTICATOR_ROLE, password: str | None = AUTHENTICATOR_TEST_PASSWORD,
            database: str | None = None) -> str:
        credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database or self.database}"

    async def connect(self, **kwargs: Any) -> asyncpg.Connection:
        # No named prepared statements through a transaction pooler.
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn(), statement_cache_size=0, **kwargs)
        return conn

    async def show(self, what: str) -> list[dict[str, str | None]]:
        """`SHOW <what>` on PgBouncer's admin console (simple query protocol only)."""
        return await asyncio.wait_for(_simple_query(self.port, ADMIN_USER, "pgbouncer", f"SHOW {what}"), 10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def _simple_query(port: int, user: str, database: str, sql: str) -> list[dict[str, str | None]]:
    """A minimal PostgreSQL wire client: startup (trust), one simple Query,
    rows as text. PgBouncer's admin console speaks nothing else."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    def message(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("!I", len(payload) + 4) + payload

    async def receive() -> tuple[bytes, bytes]:
        header = await reader.readexactly(5)
        length = struct.unpack("!I", header[1:])[0]
        return header[:1], await reader.readexactly(length - 4)

    def cstrings(payload: bytes) -> list[str]:
        return [p.decode() for p in payload.split(b"\0") if p]

    try:
        params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in {"user": user, "database": database}.items())
        startup = struct.pack("!I", 196608) + params + b"\0"
        writer.write(struct.pack("!I", len(startup) + 4) + startup)
        rows: list[dict[str, str | None]] = []
        columns: list[str] = []
        sent = False
        while True:
            kind, payload = await receive()
            if kind == b"E":
                raise RuntimeError(f"pgbouncer console: {cstrings(payload)}")
            if kind == b"R" and struct.unpack("!I", payload[:4])[0] != 0:
                raise RuntimeError("pgbouncer console asked for a password")
            if kind == b"T":
                count = struct.unpack("!H", payload[:2])[0]
                offset, columns = 2, []
                for _ in range(count):
                    end = payload.index(b"\0", offset)
                    columns.append(payload[offset:end].decode())
                    offset = end + 1 + 18  # table oid, attnum, type oid, size, typmod, format
            elif kind == b"D":
                count = struct.unpack("!H", payload[:2])[0]
                offset = 2
                values: list[str | None] = []
                for _ in range(count):
                    size = struct.unpack("!i", payload[offset:offset + 4])[0]
                    offset += 4
                    if size < 0:
                        values.append(None)
                    else:
                        values.append(payload[offset:offset + size].decode())
                        offset += size
                rows.append(dict(zip(columns, values)))
            elif kind == b"Z":
                if sent:
                    return rows
                writer.write(message(b"Q", sql.encode() + b"\0"))
                sent = True
    finally:
        writer.write(message(b"X", b""))
        writer.close()


@asynccontextmanager
async def run_pgbouncer(
    db_dsn: str, directory: Path, *, ignore_startup_parameters: str = "role"
) -> AsyncIterator[Bouncer]:
    """A pgbouncer in transaction mode in front of `db_dsn`'s database; stopped on exit."""
    binary = _pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does it when root)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.split("\n")[0]
    upstream = Upstream.from_dsn(db_dsn)
    directory.mkdir(parents=True, exist_ok=True)
    users = directory / "users.txt"
    users.write_text(
        f'"{AUTHENTICATOR_ROLE}" "{AUTHENTICATOR_TEST_PASSWORD}"\n'
        f'"{ADMIN_USER}" ""\n'
    )
    log = directory / "pgbouncer.log"
    command = [binary]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root. Run it as whoever runs PostgreSQL
        # when that is a local socket (so it may open the socket), else nobody.
        owner = os.stat(upstream.host).st_uid if upstream.host.startswith("/") else pwd.getpwnam("nobody").pw_uid
        command += ["-u", pwd.getpwuid(owner).pw_name]
    process: subprocess.Popen[bytes] | None = None
    for _ in range(5):
        port = _free_port()
        config = directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"centrid = host={upstream.host} port={upstream.port} dbname={upstream.database}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {SERVER_POOL_SIZE}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 200\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"admin_users = {ADMIN_USER}\n"
            f"ignore_startup_parameters = {ignore_startup_parameters}\n"
            "query_wait_timeout = 60\n"
            "server_login_retry = 1\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        with log.open("ab") as out:
            process = subprocess.Popen([*command, str(config)], stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        bouncer = Bouncer(port=port, database="centrid", log=log, version=version)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                await bouncer.show("VERSION")
                break
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                await asyncio.sleep(0.05)
        if process.poll() is None:
            break
        process = None  # most likely the port was taken meanwhile: try another
    assert process is not None, f"pgbouncer did not start:\n{log.read_text(errors='replace')}"
    try:
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def bouncer(db: MigratedDB, tmp_path: Path) -> AsyncIterator[Bouncer]:
    async with run_pgbouncer(db.dsn, tmp_path / "pgbouncer") as b:
        yield b


# What the app's pool sends at startup (centrid.db.pool.open_pool).
POOL_STARTUP = {"role": "anon", "application_name": "centrid"}

_LEFTOVERS_SQL = """
SELECT pg_backend_pid() AS pid,
       current_user::text AS current_user,
       session_user::text AS session_user,
       current_setting('role') AS role,
       current_setting('request.jwt.claims', true) AS claims,
       current_setting('request.jwt.claim.sub', true) AS claim_sub,
       current_setting('request.jwt.claim.role', true) AS claim_role,
       current_setting('statement_timeout') AS statement_timeout,
       (SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout') AS statement_timeout_default,
       (SELECT count(*) FROM pg_prepared_statements) AS prepared_statements,
       (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors  -- not this query's own portal
"""


def _assert_pristine(row: asyncpg.Record) -> None:
    """A server connection between transactions: nobody's role, claims or settings."""
    assert row["role"] == "anon", dict(row)  # no SET ROLE survived; anon is the login's default
    assert row["session_user"] == AUTHENTICATOR_ROLE, dict(row)
    assert row["current_user"] == "anon", dict(row)
    for setting in ("claims", "claim_sub", "claim_role"):
        assert row[setting] in (None, ""), dict(row)
    assert row["statement_timeout"] == row["statement_timeout_default"], dict(row)
    assert row["prepared_statements"] == 0, dict(row)  # statement_cache_size=0 took effect
    assert row["cursors"] == 0, dict(row)


async def _server_backends(db: MigratedDB) -> list[asyncpg.Record]:
    """PgBouncer's server connections for the request login, as PostgreSQL sees them."""
    rows: list[asyncpg.Record] = await db.owner.fetch(
        "SELECT pid, state, xact_start FROM pg_stat_activity "
        "WHERE datname = current_database() AND usename = $1",
        AUTHENTICATOR_ROLE,
    )
    return rows


async def test_the_request_login_alone_reaches_nothing_through_pgbouncer(
    db: MigratedDB, bouncer: Bouncer, tmp_path: Path
) -> None:
    # PgBouncer only passes on the startup parameters it tracks; the pool's
    # `role` must be listed in ignore_startup_parameters or it refuses the
    # connection, and then it is dropped, not forwarded.
    async with run_pgbouncer(db.dsn, tmp_path / "strict", ignore_startup_parameters="") as strict:
        try:
            conn = await strict.connect(server_settings=POOL_STARTUP)
        except asyncpg.ProtocolViolationError as exc:
            assert "unsupported startup parameter: role" in str(exc)
        else:  # a PgBouncer that tracks `role` would have to pass it on
            try:
                assert await conn.fetchval("SELECT current_user") == "anon"
            finally:
                await conn.close()

    user = await create_user(db.owner, name="victim")
    await db.owner.execute(
        "INSERT INTO documents (user_id, filename, file_type, file_size) VALUES ($1, 'secret.txt', 'text/plain', 1)",
        uuid.UUID(user),
    )
    for startup in (POOL_STARTUP, {}):
        conn = await bouncer.connect(server_settings=startup)
        try:
            who = await conn.fetchrow("SELECT current_user::text AS current, session_user::text AS login")
            assert who is not None
            assert who["login"] == AUTHENTICATOR_ROLE
            # PgBouncer 1.18 drops the `role` startup parameter, but the
            # login's own default (ALTER ROLE ... SET role) still makes it anon.
            assert who["current"] == "anon", dict(who)
            # Without a request scope: the login bypasses nothing and owns nothing...
            login = await conn.fetchrow(
                "SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = session_user"
            )
            assert login is not None and not any(login.values()), dict(login or {})
            owned = await conn.fetchval(
                "SELECT count(*) FROM pg_shdepend WHERE deptype = 'o' "
                "AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = session_user)"
            )
            assert owned == 0
            # ...so it reads and writes none of the tables, and sees no user.
            for table in (*SIX_TABLES, "auth.users"):
                if who["current"] == AUTHENTICATOR_ROLE:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.fetchval(f"SELECT count(*) FROM {table}")
                else:  # anon: RLS and grants leave nothing to see
                    try:
                        visible = await conn.fetchval(f"SELECT count(*) FROM {table}")
                    except asyncpg.InsufficientPrivilegeError:
                        continue
                    assert visible == 0, f"anon saw {visible} rows of {table} outside a request"
            with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.CheckViolationError,
                                asyncpg.NotNullViolationError)):
                await conn.execute(
                    "INSERT INTO documents (user_id, filename, file_type, file_size) "
                    "VALUES ($1, 'planted.txt', 'text/plain', 1)",
                    uuid.UUID(user),
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE documents SET filename = 'stolen'")
            # And it cannot become the tables' owner.
            owner = await db.owner.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'documents'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f'SET ROLE "{owner}"')
        finally:
            await conn.close()
    assert await db.owner.fetchval("SELECT count(*) FROM documents WHERE filename <> 'secret.txt'") == 0


def _pool_row(rows: list[dict[str, str | None]], bouncer: Bouncer) -> dict[str, str | None]:
    matches = [r for r in rows if r["database"] == bouncer.database and r["user"] == AUTHENTICATOR_ROLE]
    assert len(matches) == 1, rows
    return matches[0]


def _count(row: dict[str, str | None], *columns: str) -> int:
    return sum(int(row.get(c) or 0) for c in columns)


class LoadSampler:
    """While load runs: the most server connections PostgreSQL saw for the
    request login, the most app connections PgBouncer saw, and what a client
    outside any request scope finds on the server connections the requests
    share (it must never inherit a caller's role, claims or settings)."""

    def __init__(self, db: MigratedDB, bouncer: Bouncer) -> None:
        self.db = db
        self.bouncer = bouncer
        self.max_servers = 0
        self.max_clients = 0
        self.samples = 0
        self.unscoped_looks = 0
        self.unscoped_pids: set[int] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _sample(self) -> None:
        while not self._stop.is_set():
            self.max_servers = max(self.max_servers, len(await _server_backends(self.db)))
            clients = await self.bouncer.show("CLIENTS")
            self.max_clients = max(self.max_clients, len([c for c in clients if c["application_name"] == "centrid"]))
            self.samples += 1
            await asyncio.sleep(0.005)

    async def _look_unscoped(self) -> None:
        conn = await self.bouncer.connect()
        try:
            while not self._stop.is_set():
                # Autocommit: PgBouncer lends this statement whichever server
                # connection is free, typically one a request just gave back.
                row = await conn.fetchrow(_LEFTOVERS_SQL)
                assert row is not None
                _assert_pristine(row)
                self.unscoped_looks += 1
                self.unscoped_pids.add(row["pid"])
        finally:
            await conn.close()

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._sample()),
                       asyncio.ensure_future(self._look_unscoped()),
                       asyncio.ensure_future(self._look_unscoped())]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def test_interleaved_callers_through_pgbouncer_transaction_pooling(
    db: MigratedDB, app_settings: Any, bouncer: Bouncer
) -> None:
    cfg = dataclasses.replace(
        app_settings,
        request_database_url=bouncer.dsn(),
        statement_cache_size=0,
        pool_min_size=1,
        pool_max_size=APP_POOL_SIZE,
        pool_acquire_timeout=30.0,  # hundreds of requests queue for 2 server connections on a slow CI box
    )
    async with app_client(cfg) as (_, client):
        users, docs = await seed_callers(client, db.owner, chunks=True)
        owner_of = {d: u for u, ds in docs.items() for d in ds}

        rng = random.Random(4321)
        created_docs: list[tuple[str, str]] = []
        created_chunks: list[tuple[str, int]] = []
        created_events: list[tuple[str, str]] = []
        patched: set[str] = set()
        usage_counts: dict[str, set[int]] = {u: {0} for u in users}
        counter = iter(range(100, 100_000))

        only = assert_only_callers_rows

        def make_op(kind: int) -> Callable[[], Awaitable[None]]:
            user = rng.choice(users)
            other = rng.choice([u for u in users if u != user])
            n = next(counter)

            async def list_docs() -> None:
                r = await client.get("/api/documents", params={"limit": 100}, headers=bearer(user))
                assert r.status_code == 200, r.text
                only(user, r.json()["items"], "GET /api/documents")
                assert set(docs[user]) <= {d["id"] for d in r.json()["items"]}

            async def post_doc() -> None:
                r = await client.post("/api/documents", json={**DOC, "filename": "bouncer.txt"}, headers=bearer(user))
                assert r.status_code == 201, r.text
                assert r.json()["user_id"] == user
                created_docs.append((r.json()["id"], user))

            async def patch_own() -> None:
                doc = rng.choice(docs[user])
                r = await client.patch(f"/api/documents/{doc}", json={"processing_status": "processing"},
                                       headers=bearer(user))
                assert r.status_code == 200, r.text
                assert r.json()["user_id"] == user
                patched.add(doc)

            async def patch_others() -> None:
                r = await client.patch(f"/api/documents/{rng.choice(docs[other])}", json={"filename": "stolen"},
                                       headers=bearer(user))
                assert r.status_code == 404, r.text

            async def add_chunk() -> None:
                doc = rng.choice(docs[user])
                r = await client.post(f"/api/documents/{doc}/chunks", json=[{"chunk_index": n, "content": "more"}],
                                      headers=bearer(user))
                assert r.status_code == 201, r.text
                created_chunks.append((doc, n))

            async def duplicate_chunk() -> None:
                # A new chunk and a duplicate of chunk 0 in one request: 409, and the new one is gone too.
                doc = rng.choice(docs[user])
                r = await client.post(f"/api/documents/{doc}/chunks",
                                      json=[{"chunk_index": 50_000 + n, "content": "doomed"},
                                            {"chunk_index": 0, "content": "duplicate"}],
                                      headers=bearer(user))
                assert r.status_code == 409, r.text

            async def forbidden_plan() -> None:
                # Column privileges refuse it in the database: 403, rolled back.
                r = await client.patch("/api/profile", json={"name": f"user{users.index(user)}", "plan_type": "enterprise"},
                                       headers=bearer(user))
                assert r.status_code == 403, r.text

            async def anon_reads() -> None:
                for path in ("/api/documents", "/api/agent-requests"):
                    r = await client.get(path)
                    assert r.status_code == 200 and r.json()["items"] == [], r.text
                r = await client.get("/hello")
                assert r.status_code == 200, r.text
                assert set(r.json()["visible_rows"].values()) == {0}, r.text

            async def service_event() -> None:
                marker = f"bouncer-{n}"
                r = await client.post("/api/usage-events", headers=service(),
                                      json={"user_id": user, "event_type": "tokens", "tokens_used": 1,
                                            "metadata": {"marker": marker}})
                assert r.status_code == 201, r.text
                assert r.json()["user_id"] == user
                created_events.append((marker, user))

            async def service_counter() -> None:
                value = rng.randint(1, 1000)
                usage_counts[user].add(value)
                r = await client.patch(f"/api/profiles/{user}", json={"usage_count": value}, headers=service())
                assert r.status_code == 200, r.text
                assert r.json()["user_id"] == user and r.json()["usage_count"] == value

            caller = CallerOps(client, users, docs, user, other, rng)
            ops = [list_docs, caller.get_own, caller.get_others, post_doc, patch_own, patch_others, add_chunk, duplicate_chunk,
                   forbidden_plan, caller.profile, caller.hello, caller.search, anon_reads, caller.anon_write, caller.service_list, service_event,
                   service_counter]
            return ops[kind % len(ops)]

        operations = [make_op(i) for i in range(17 * 24)]
        rng.shuffle(operations)
        sampler = LoadSampler(db, bouncer)
        sampler.start()
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(op() for op in operations), return_exceptions=True)
        finally:
            await sampler.stop()
        elapsed = time.monotonic() - started
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, (
            f"{len(failures)} of {len(results)} failed; first: {failures[0]!r}\n{bouncer.log_tail()}"
        )
        assert elapsed < 120
        assert sampler.samples > 3, "the sampler never ran alongside the load"
        # Transaction pooling: more app connections than server connections.
        assert 1 <= sampler.max_servers <= SERVER_POOL_SIZE, sampler.max_servers
        assert SERVER_POOL_SIZE < sampler.max_clients <= APP_POOL_SIZE, sampler.max_clients
        # A client outside any scope kept landing on the servers the requests used.
        assert sampler.unscoped_looks > 20 and sampler.unscoped_pids, sampler.unscoped_looks

        # Afterwards, with the app (and its pool of PgBouncer clients) still up:
        # no server connection is busy or left inside a transaction...
        pool = _pool_row(await bouncer.show("POOLS"), bouncer)
        assert _count(pool, "cl_waiting", "sv_active") == 0, pool
        assert pool["pool_mode"] == "transaction", pool
        servers = [s for s in await bouncer.show("SERVERS") if s["database"] == bouncer.database]
        assert 1 <= len(servers) <= SERVER_POOL_SIZE, servers
        assert {s["state"] for s in servers} <= {"idle", "used"}, servers
        backends = await _server_backends(db)
        assert {b["pid"] for b in backends} == {int(s["remote_pid"] or 0) for s in servers}, (backends, servers)
        assert [dict(b) for b in backends if b["state"] != "idle" or b["xact_start"] is not None] == []

        # ...and none kept a caller's role, claims or settings: hold every
        # server connection at once from outside any request scope and look.
        probes = [await bouncer.connect() for _ in range(SERVER_POOL_SIZE)]
        try:
            for conn in probes:
                await conn.execute("BEGIN")
            seen = [await conn.fetchrow(_LEFTOVERS_SQL) for conn in probes]
            held = {b["pid"] for b in await _server_backends(db)}
            for conn in probes:
                await conn.execute("ROLLBACK")
        finally:
            for conn in probes:
                await conn.close()
        for row in seen:
            assert row is not None
            _assert_pristine(row)
        assert {row["pid"] for row in seen if row is not None} == held, (seen, held)
        assert {b["pid"] for b in backends} <= held

    # Every write that answered 2xx committed, under its caller; every refused one left nothing.
    rows = await db.owner.fetch("SELECT id::text, user_id::text FROM documents WHERE filename = 'bouncer.txt'")
    assert sorted((r["id"], r["user_id"]) for r in rows) == sorted(created_docs)
    assert len(created_docs) == 24
    rows = await db.owner.fetch("SELECT document_id::text, chunk_index FROM document_chunks WHERE chunk_index > 0")
    assert sorted((r["document_id"], r["chunk_index"]) for r in rows) == sorted(created_chunks)
    assert len(created_chunks) == 24
    rows = await db.owner.fetch("SELECT metadata->>'marker' AS marker, user_id::text FROM usage_events")
    assert sorted((r["marker"], r["user_id"]) for r in rows) == sorted(created_events)
    assert len(created_events) == 24
    for doc, user in owner_of.items():
        row = await db.owner.fetchrow("SELECT user_id::text, filename, processing_status FROM documents WHERE id = $1",
                                      uuid.UUID(doc))
        assert row is not None and row["user_id"] == user and row["filename"] != "stolen"
        assert row["processing_status"] == ("processing" if doc in patched else "pending")
    assert patched
    for user in users:
        profile_row = await db.owner.fetchrow("SELECT plan_type, usage_count FROM user_profiles WHERE user_id = $1",
                                              uuid.UUID(user))
        assert profile_row is not None
        assert profile_row["plan_type"] == "free"
        assert profile_row["usage_count"] in usage_counts[user]
