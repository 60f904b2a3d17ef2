"""Column factories shared by every table, so each table says only what is its own."""

from typing import Any, get_args

from piccolo.columns import Column, ForeignKey, Timestamptz
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check

from centrid.schema.tables.auth import AuthUser


def created_at() -> Timestamptz:
    return Timestamptz(default=TimestamptzNow(), null=False)


def updated_at() -> Timestamptz:
    # Kept current by the BEFORE UPDATE trigger declared in TableSecurity.
    return Timestamptz(default=TimestamptzNow(), null=False)


def owner(*, unique: bool = False, index: bool = True) -> ForeignKey[AuthUser]:
    """`user_id`: the owning auth user; deleting the user deletes the row."""
    return ForeignKey(
        references=AuthUser,
        on_delete=OnDelete.cascade,
        null=False,
        default=None,
        unique=unique,
        index=index,
    )


def one_of(column: str, allowed: Any) -> Check:
    """The CHECK for a text column limited to a `Literal` alias's values.

    The alias is the one statement of the set: the API's request and
    response models use it as their field type (so OpenAPI lists the same
    enum), and this renders it as `column IN ('a', 'b')`, the text the
    migrations were generated from.
    """
    values = get_args(allowed)
    if not values or not all(isinstance(v, str) and "'" not in v for v in values):
        raise TypeError(f"{column}: one_of needs a Literal of plain strings, got {allowed!r}")
    return Check(f"{column} IN ({', '.join(repr(v) for v in values)})")


class Vector(Column):
    """pgvector's `vector(n)`: Piccolo has no such type.

    The type is written unqualified: wherever the `vector` extension lives
    (`extensions` on Supabase and where centrid creates it, `public` on a
    database that had it before), migrations and `piccolo centrid check`
    run with that schema on their search_path (centrid.db.migrations), so the
    same DDL works everywhere. Values travel as pgvector's text form
    (`[1,2,3]`); the API never reads the column through Piccolo.
    """

    value_type = list

    def __init__(self, dimensions: int = 384, default: None = None, **kwargs: Any) -> None:
        self.dimensions = dimensions
        self.default = default
        super().__init__(dimensions=dimensions, default=default, **kwargs)

    @property
    def column_type(self) -> str:
        return f"vector({self.dimensions})"
