"""Column factories shared by every table, so each table says only what is its own."""

from piccolo.columns import ForeignKey, Timestamptz
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow

from centrid.tables.auth import AuthUser


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
