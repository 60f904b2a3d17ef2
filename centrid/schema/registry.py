"""The rule every registry of declarations must satisfy.

Each table class the app migrates needs exactly one TableSecurity, and each
TableSecurity a registered class, so a table can never ship open. With the
classes derived from `centrid.schema.tables.SECURITY` that holds by
construction; what remains is a table class written in centrid/schema/tables/
but left out of the registry (Piccolo would silently never create it), or a
class added to the app some other way (to APP_CONFIG by hand).
`new_migration` refuses to write anything while any of these is broken.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
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
    for sec in declarations:
        columns = sec.column_types()
        for storage in sec.storage.columns if sec.storage is not None else ():
            if storage.column not in columns:
                diffs.append(
                    Difference(
                        sec.tablename,
                        "declaration",
                        storage.column,
                        "storage declared for its own columns",
                        f"storage for {storage.column}, which it does not have",
                    )
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


def unregistered_tables(registered: Sequence[type[Table]], package: str = "centrid.schema.tables") -> list[type[Table]]:
    """Table classes defined in the table modules but missing from
    `registered`. Only tables in `public` count: `auth.users` (AuthUser) is
    Supabase's, described for foreign keys and deliberately never migrated."""
    names = {t._meta.tablename for t in registered}
    found: list[type[Table]] = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Table)
                and cls.__module__ == module.__name__
                and (cls._meta.schema or "public") == "public"
                and cls._meta.tablename not in names
            ):
                found.append(cls)
    return found
