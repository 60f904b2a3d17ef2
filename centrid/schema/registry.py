"""The rule every registry of declarations must satisfy.

Each table class the app migrates needs exactly one TableSecurity, and each
TableSecurity a registered class, so a table can never ship open. With the
classes derived from `centrid.schema.tables.SECURITY` this holds by
construction; the rule still guards a class added to the app some other
way (e.g. to TABLE_CLASSES or APP_CONFIG by hand), and `new_migration`
refuses to write anything while it is broken.
"""

from __future__ import annotations

from collections.abc import Sequence

from piccolo.table import Table

from centrid.schema.difference import Difference
from centrid.schema.security import TableSecurity


def declaration_problems(
    table_classes: Sequence[type[Table]], declarations: Sequence[TableSecurity]
) -> list[Difference]:
    diffs: list[Difference] = []
    declared: dict[str, int] = {}
    for sec in declarations:
        declared[sec.tablename] = declared.get(sec.tablename, 0) + 1
    registered = {t._meta.tablename for t in table_classes}
    for table in table_classes:
        name = table._meta.tablename
        if name not in declared:
            diffs.append(
                Difference(name, "declaration", "", "a TableSecurity declaration (centrid.schema.tables.SECURITY)", "none")
            )
    for name, count in declared.items():
        if count > 1:
            diffs.append(Difference(name, "declaration", "", "one TableSecurity declaration", f"{count}"))
        if name not in registered:
            diffs.append(
                Difference(
                    name,
                    "declaration",
                    "",
                    "its table class registered in the centrid app (APP_CONFIG.table_classes)",
                    "a TableSecurity declaration only",
                )
            )
    return diffs
