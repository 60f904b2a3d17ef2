"""`piccolo centrid check`: does the live database match the code?

Compares the database behind the configured engine (piccolo_conf.DB, i.e.
DATABASE_URL or the embedded server, as the owner role) with the centrid
table classes and their security declarations (see centrid.schema.drift). Exits 0
and prints one OK line when they match; otherwise prints each difference on
its own line and exits 1. Never changes the database.
"""

from __future__ import annotations

import sys

from piccolo.conf.apps import Finder
from piccolo.engine.postgres import PostgresEngine

from centrid.schema.drift import Difference, find_drift


async def collect() -> list[Difference]:
    """The differences for the configured engine and the registered apps."""
    finder = Finder()
    engine = finder.get_engine()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("piccolo centrid check needs a PostgreSQL engine in piccolo_conf")
    app = finder.get_app_config("centrid")
    # Imported here so that the project's own registration is what counts.
    from centrid.schema.tables import SECURITY

    others = [
        t._meta.tablename
        for config in finder.get_app_registry().app_configs.values()
        if config.app_name != "centrid"
        for t in config.table_classes
    ]
    conn = await engine.get_new_connection()
    try:
        return await find_drift(conn, app.table_classes, SECURITY, other_tables=others)
    finally:
        await conn.close()


async def check() -> None:
    """Compare the live database with the table classes and their security
    declarations; exit 1 listing every difference."""
    differences = await collect()
    if not differences:
        print("OK: the database matches the table classes and their security declarations")
        return
    for difference in differences:
        print(difference)
    print(f"{len(differences)} difference(s) between the database and the code", file=sys.stderr)
    sys.exit(1)
