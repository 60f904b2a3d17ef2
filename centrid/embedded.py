"""The embedded PostgreSQL used when DATABASE_URL is unset.

We use the `pgserver` wheel: it ships real PostgreSQL 16 binaries, so a fresh
machine needs no apt, Docker or running server. It listens only on a Unix
socket inside the data directory, so it never competes for port 5432 with a
PostgreSQL already on the machine, and the default data directory lives in
the checkout, so two checkouts never share one by accident. pgserver counts
the processes using a data directory and stops the server when the last one
exits, which makes it safe for the CLI, the server and the tests to share it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("centrid.embedded")

_servers: dict[Path, Any] = {}


def embedded_dsn(data_dir: Path, database: str = "postgres") -> str:
    """Start (or join) the embedded server for `data_dir` and return a DSN."""
    pgdata = (data_dir / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        pgdata.mkdir(parents=True, exist_ok=True)
        # pgserver keeps a lock file under XDG_RUNTIME_DIR; without one set it
        # warns and falls back to /tmp, which is fine for us.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

            server = get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
        log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    uri: str = server.get_uri(database)
    return uri
