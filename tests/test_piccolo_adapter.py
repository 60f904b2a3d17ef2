"""centrid.db.piccolo_adapter against the installed Piccolo and targ, no
database: what the adapter takes from them beyond their public API must
still be there and still mean the same. A failure here after an upgrade
means: fix the adapter, then widen the pin in pyproject.toml.

Piccolo's own private functions appear in this file only, as the
reference the adapter is compared with."""

from __future__ import annotations

import datetime
import inspect
import sys
from pathlib import Path

import pytest
import targ
from piccolo.apps.migrations.auto.schema_differ import AlterStatements
from piccolo.apps.migrations.commands import new as piccolo_new
from piccolo.columns import ForeignKey, Text, Varchar
from piccolo.conf.apps import AppConfig
from piccolo.table import Table

from centrid.db.migration_files import write_auto_migration
from centrid.db.piccolo_adapter import (
    PICCOLO_VERSION,
    auto_migration,
    command_words,
    id_time,
    migration_filename,
    migration_id,
)

NOW = datetime.datetime(2031, 2, 3, 4, 5, 6, 789012)
PICCOLO_IMPORT = "from piccolo.apps.migrations.auto.migration_manager import MigrationManager"
SERIALIZED_IMPORT = "from centrid.db.migrations import SerializedMigrationManager as MigrationManager"


class AdapterAuthor(Table, tablename="adapter_authors"):
    name = Varchar(length=50, unique=True)


class AdapterBook(Table, tablename="adapter_books"):
    title = Text()
    author = ForeignKey(AdapterAuthor)


def _app(folder: Path) -> AppConfig:
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    return AppConfig(app_name="adapter", migrations_folder_path=str(folder), table_classes=[AdapterAuthor, AdapterBook])


def test_the_differ_keeps_the_shape_the_adapter_reads() -> None:
    assert "auto_input" in inspect.signature(piccolo_new.AutoMigrationManager).parameters
    assert list(inspect.signature(piccolo_new.AutoMigrationManager.get_alter_statements).parameters) == [
        "self",
        "app_config",
    ]
    assert {f for f in AlterStatements.__dataclass_fields__} == {"statements", "extra_imports", "extra_definitions"}


async def test_the_auto_migration_is_piccolos_own_but_serialized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written by Piccolo's `migrations new --auto` and by centrid, for the
    same tables at the same instant: the same file but for the import."""
    monkeypatch.setattr(piccolo_new, "now", lambda: NOW)
    piccolos = _app(tmp_path / "piccolo_side")
    meta = await piccolo_new._create_new_migration(app_config=piccolos, auto=True, description="two tables")
    expected = Path(meta.migration_path).read_text()
    assert expected.startswith(PICCOLO_IMPORT + "\n")

    ours = await write_auto_migration(_app(tmp_path / "centrid_side"), description="two tables", auto_input=None, now=NOW)
    assert ours is not None and ours.name == Path(meta.migration_path).name
    text = ours.read_text()
    assert text == expected.replace(PICCOLO_IMPORT, SERIALIZED_IMPORT, 1)
    assert 'tablename="adapter_books"' in text and "class AdapterAuthor(Table" in text
    assert f'VERSION = "{PICCOLO_VERSION}"' in text


async def test_no_difference_is_no_auto_migration(tmp_path: Path) -> None:
    app = _app(tmp_path / "migrations")
    # Another instant than the test above: Piccolo imports migrations by file name, once per process.
    first = await write_auto_migration(app, description="", auto_input=None, now=NOW + datetime.timedelta(days=1))
    assert first is not None
    assert await auto_migration(app) is None
    assert await write_auto_migration(app, description="", auto_input=None) is None
    assert [p.name for p in app_files(app)] == [first.name]


def app_files(app: AppConfig) -> list[Path]:
    return sorted(Path(app.resolved_migrations_folder_path).glob("adapter_*.py"))


def test_ids_and_file_names_are_piccolos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(piccolo_new, "now", lambda: NOW)
    app = AppConfig(app_name="centrid", migrations_folder_path=str(tmp_path), table_classes=[])
    meta = piccolo_new._generate_migration_meta(app_config=app)
    assert migration_id(NOW) == meta.migration_id == "2031-02-03T04:05:06:789012"
    assert migration_filename("centrid", meta.migration_id) == meta.migration_filename + ".py"
    assert id_time(meta.migration_id) == NOW


def test_a_command_finds_its_own_words_while_targ_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """targ leaves the command line as typed on sys.argv, so `--ttl 60` can be re-read there."""
    seen: list[list[str] | None] = []

    def token(user_id: str = "", role: str = "", ttl: str = "") -> None:
        seen.append(command_words("centrid", "token"))

    cli = targ.CLI()
    cli.register(token, group_name="centrid")
    monkeypatch.setattr(sys, "argv", ["piccolo", "centrid", "token", "u1", "--ttl", "60"])
    cli.run()
    assert seen == [["u1", "--ttl", "60"]]


def test_called_from_python_a_command_has_no_words() -> None:
    assert command_words("centrid", "token", ["python", "-c", "pass"]) is None
    assert command_words("centrid", "token", ["piccolo", "centrid", "token"]) == []
