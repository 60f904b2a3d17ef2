"""Where the test suite's PostgreSQL comes from.

CENTRID_TEST_DATABASE_URL if set (a superuser DSN); else a testcontainers
PostgreSQL with pgvector (the `pgvector/pgvector:pg18` image) when a Docker
engine answers; else the embedded PostgreSQL (centrid.db.embedded) in a
throwaway directory. Each test then gets its own database cloned from a
template that `piccolo migrations forwards all` migrated once per session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass


# PostgreSQL 18 with pgvector, like the embedded server: the retrieval code
# needs pgvector 0.8+ in every test cluster.
TESTCONTAINERS_IMAGE = "pgvector/pgvector:pg18"


@dataclass
class Cluster:
    dsn: str  # superuser DSN to the maintenance database
    kind: str
    stop: Callable[[], None]


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def _throwaway_durability(dsn: str) -> None:
    """A cluster that dies with the session needs no crash safety; without
    fsync, cloning the template per test costs ~0.1 s instead of ~0.25 s."""
    import asyncio

    import asyncpg

    async def apply() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {setting} = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    asyncio.run(apply())


def start_cluster() -> Cluster:
    url = os.environ.get("CENTRID_TEST_DATABASE_URL", "").strip()
    if url:
        return Cluster(url, "CENTRID_TEST_DATABASE_URL", lambda: None)
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(TESTCONTAINERS_IMAGE, driver=None)
        container.start()
        _throwaway_durability(container.get_connection_url())
        return Cluster(container.get_connection_url(), "testcontainers", container.stop)
    from pathlib import Path

    from centrid.db.embedded import embedded_dsn, release

    directory = Path(tempfile.mkdtemp(prefix="centrid-test-"))
    dsn = embedded_dsn(directory)
    _throwaway_durability(dsn)

    def stop() -> None:
        release(directory)
        shutil.rmtree(directory, ignore_errors=True)

    return Cluster(dsn, "embedded", stop)
