"""Everything centrid takes from Piccolo (and targ, its CLI) beyond their
public API, in one place, tested against the pinned Piccolo range by
tests/test_piccolo_adapter.py, which fails loudly when an upgrade changes
any of it.

- The auto migration's content. `piccolo migrations new --auto` writes a
  file that uses Piccolo's MigrationManager; centrid's migrations must use
  SerializedMigrationManager, and Piccolo has no option for that. So the
  differ behind the command (AutoMigrationManager) gives the statements
  and centrid writes the file (centrid.db.migration_files), formatted as
  Piccolo formats its own.
- Migration IDs: Piccolo orders migrations by ID and names files after
  them, by a format it does not export.
- A command's own words on the command line, which targ cannot hand over.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import black
from piccolo import __VERSION__
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import AppConfig

PICCOLO_VERSION: str = __VERSION__

# Piccolo's migration ID, e.g. "2026-11-24T21:27:04:885433"; IDs sort as
# strings in the order the migrations run.
MIGRATION_ID_FORMAT = "%Y-%m-%dT%H:%M:%S:%f"

# What Piccolo formats its generated migrations with.
_BLACK_MODE = black.Mode(line_length=82)


@dataclass(frozen=True)
class AutoMigration:
    """The parts of an auto migration: Python source lines for the module's
    imports and definitions, and the `manager.…` calls of its forwards()."""

    statements: list[str]
    imports: list[str]
    definitions: list[str]


async def auto_migration(app_config: AppConfig, auto_input: str | None = None) -> AutoMigration | None:
    """How the app's table classes differ from what its migrations build;
    None when they agree. `auto_input` answers the differ's questions
    (e.g. "was this column renamed?"); None asks on the terminal."""
    altered = await AutoMigrationManager(auto_input=auto_input).get_alter_statements(app_config=app_config)
    statements = [str(s) for s in chain.from_iterable(a.statements for a in altered)]
    if not statements:
        return None
    # Ordered as Piccolo orders them: imports by repr, definitions by their own order.
    imports = sorted(set(chain.from_iterable(a.extra_imports for a in altered)), key=repr)
    definitions = sorted(set(chain.from_iterable(a.extra_definitions for a in altered)))
    return AutoMigration(statements, [str(i) for i in imports], [str(d) for d in definitions])


def format_migration(source: str) -> str:
    return black.format_str(source, mode=_BLACK_MODE)


def migration_id(now: datetime.datetime) -> str:
    return now.strftime(MIGRATION_ID_FORMAT)


def id_time(migration_id: str) -> datetime.datetime:
    return datetime.datetime.strptime(migration_id, MIGRATION_ID_FORMAT)


def migration_filename(app_name: str, migration_id: str) -> str:
    """Piccolo's file name for a migration: "centrid_2026_11_24t21_27_04_885433.py"."""
    cleaned = migration_id.replace(":", "_").replace("-", "_").lower()
    return f"{app_name}_{cleaned}.py"


def command_words(app_name: str, command: str, argv: Sequence[str] | None = None) -> list[str] | None:
    """The words after `piccolo <app_name> <command>` on the command line;
    None when the command was not called from it.

    targ, Piccolo's CLI, only knows `--name=value`: it reads `--ttl 60` as a
    flag `--ttl` and a positional "60" that it hands to the next parameter.
    A command that wants ordinary options parses these words itself.
    """
    words = list(sys.argv if argv is None else argv)
    for i in range(1, len(words) - 1):
        if words[i] == app_name and words[i + 1] == command:
            return words[i + 2:]
    return None
