"""`piccolo centrid owner_indexes`: per-owner vector indexes for large owners.

Run as the owner role (DATABASE_URL), after migrations and then as often
as ownership changes (a nightly job is plenty: until an owner has an
index their searches are exact, complete and slower, never wrong). See
centrid.schema.owner_indexes for why the indexes exist.
"""

from __future__ import annotations

import argparse
import sys

from piccolo.conf.apps import Finder
from piccolo.engine.postgres import PostgresEngine

from centrid.db.piccolo_adapter import command_words
from centrid.schema import owner_indexes


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="piccolo centrid owner_indexes", description="Create and drop per-owner vector indexes."
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=owner_indexes.DEFAULT_THRESHOLD,
        help=f"embedded chunks an owner needs for an index (default {owner_indexes.DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--dry_run", action="store_true", help="print what would be done, change nothing")
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)  # Piccolo's own flag
    return parser


def _command_line(threshold: str, dry_run: bool) -> list[str]:
    """The words after `centrid owner_indexes` (see centrid.db.piccolo_adapter.command_words)."""
    words = command_words("centrid", "owner_indexes")
    if words is not None:
        return words
    return ([f"--threshold={threshold}"] if threshold else []) + (["--dry_run"] if dry_run else [])


async def owner_indexes_command(threshold: str = "", dry_run: bool = False) -> None:
    """Create a vector index for each owner with at least THRESHOLD embedded
    chunks and drop those whose owner fell below half of it, concurrently.

    Usage: piccolo centrid owner_indexes [--threshold N] [--dry_run]

    :param threshold:
        Embedded chunks an owner needs for an index (default 5000).
    :param dry_run:
        Print what would be done and change nothing.
    """
    parser = _arguments()
    options = parser.parse_args(_command_line(threshold, dry_run))
    if options.threshold < 1:
        parser.error("--threshold must be at least 1")
    engine = Finder().get_engine()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("piccolo centrid owner_indexes needs a PostgreSQL engine in piccolo_conf")
    conn = await engine.get_new_connection()
    try:
        if not await owner_indexes.try_lock(conn):
            print("owner_indexes: another run holds the lock; nothing done", file=sys.stderr)
            sys.exit(1)
        todo = await owner_indexes.plan(conn, options.threshold)
        for name in todo.drop:
            print(f"drop {name}")
        for owner, lists in todo.create:
            print(f"create {owner_indexes.index_name(owner)} (owner {owner}, {lists} lists)")
        if not options.dry_run:
            await owner_indexes.apply(conn, todo)
        verb = "would be" if options.dry_run else "were"
        print(
            f"owner_indexes: {len(todo.create)} {verb} created, {len(todo.drop)} dropped "
            f"(threshold {options.threshold})"
        )
    finally:
        await conn.close()
