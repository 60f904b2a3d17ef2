"""One way a database, or the registry itself, differs from the code.

Shared by the registry rule (centrid.schema.registry), the drift check
(centrid.schema.drift) and `piccolo centrid new_migration`, which all
report in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "declaration",
    "table",
    "column",
    "constraint",
    "foreign key",
    "index",
    "trigger",
    "rls",
    "policy",
    "grant",
    "extension",
    "storage",
]


@dataclass(frozen=True)
class Difference:
    table: str
    kind: Kind
    # The column, constraint, index, trigger, policy or grant concerned;
    # empty when the difference is about the table itself.
    name: str
    expected: str
    found: str

    def __str__(self) -> str:
        if self.kind == "column":
            where = f"{self.table}.{self.name}"  # table.column: ...
        elif self.kind in ("table", "declaration"):
            where = self.table  # table: ...
        else:
            where = f"{self.table}: {self.kind}" + (f" {self.name}" if self.name else "")  # table: policy x: ...
        return f"{where}: expected {self.expected}, found {self.found}"
