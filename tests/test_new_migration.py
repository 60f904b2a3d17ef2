"""`piccolo centrid new_migration`'s branches, no database: the command's
work after its registration check (`write_migrations`) on a scratch
migrations folder. tests/test_add_table.py runs the whole command, and
the migrations it writes, on a real database."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest
from piccolo.columns import Text
from piccolo.conf.apps import AppConfig
from piccolo.table import Table

from centrid.commands.new_migration import write_migrations
from centrid.db.migration_files import write_auto_migration, write_sql_migration

# Module names are global to the process (Piccolo imports migrations by
# file name), so this test's files get a time no real migration has.
EARLIER = datetime.datetime(2020, 1, 1)
NOTES_SQL = ("-- notes forwards\nCREATE POLICY notes_p ON public.notes;", "-- notes backwards\nDROP POLICY notes_p ON public.notes;")


class RemovedNote(Table, tablename="removal_test_notes"):
    body = Text()


def _constants(path: Path) -> dict[str, object]:
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()
    }


async def test_a_removed_table_loses_its_security_just_before_the_migration_that_drops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    with_notes = AppConfig(app_name="centrid", migrations_folder_path=str(folder), table_classes=[RemovedNote])
    created = await write_auto_migration(with_notes, description="notes", auto_input=None, now=EARLIER)
    assert created is not None
    secured = write_sql_migration(
        *NOTES_SQL,
        {"removal_test_notes": NOTES_SQL},
        description="security: new notes",
        directory=folder,
        now=EARLIER + datetime.timedelta(seconds=1),
    )
    before = set(folder.glob("centrid_*.py"))

    # The class and its declaration are gone.
    without_notes = AppConfig(app_name="centrid", migrations_folder_path=str(folder), table_classes=[])
    await write_migrations(without_notes, (), desc="drop notes", auto_input=None)

    out = capsys.readouterr().out
    new = sorted(set(folder.glob("centrid_*.py")) - before, key=lambda p: str(_constants(p)["ID"]))
    assert len(new) == 2, out
    removal, drop = new
    assert "manager.drop_table(" in drop.read_text() and 'tablename="removal_test_notes"' in drop.read_text()
    # The security goes first, while the table is still there; backwards
    # restores it after the table is back.
    removal_constants = _constants(removal)
    assert str(removal_constants["ID"]) < str(_constants(drop)["ID"])
    assert str(removal_constants["ID"]) > str(_constants(secured)["ID"])
    assert removal_constants["FORWARDS_SQL"] == "\n-- removal_test_notes: removed\n" + NOTES_SQL[1] + "\n"
    assert removal_constants["BACKWARDS_SQL"] == "\n-- removal_test_notes: removed\n" + NOTES_SQL[0] + "\n"
    assert removal_constants["SECURITY_SNAPSHOT"] == {}
    assert removal_constants["DESCRIPTION"] == "security removed: removal_test_notes"
    assert "Security migration (removed tables, runs before the auto migration)" in out
