"""The vocabulary a table module uses to declare its security and extras.

A table's policies, grants, triggers and the database-side objects Piccolo
cannot express are written as data next to its class, so one file shows all
a table allows. `centrid.schema.render` turns these into SQL for
migrations, and `piccolo centrid check` compares them with a live database.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Literal

from piccolo.table import Table

# Re-exported: a table module declares roles with the rest of its vocabulary.
from centrid.schema.roles import ADMIN_ROLE as ADMIN_ROLE
from centrid.schema.roles import ALL_ROLES as ALL_ROLES
from centrid.schema.roles import ANON as ANON
from centrid.schema.roles import API_ROLES as API_ROLES
from centrid.schema.roles import AUTHENTICATED as AUTHENTICATED
from centrid.schema.roles import SERVICE_ROLE as SERVICE_ROLE

Command = Literal["SELECT", "INSERT", "UPDATE", "DELETE"]
Privilege = Literal["SELECT", "INSERT", "UPDATE", "DELETE"]

# Evaluated once per statement thanks to the scalar sub-select (an InitPlan)
# instead of once per row.
CURRENT_UID = "(select auth.uid())"


@dataclass(frozen=True)
class Policy:
    name: str
    command: Command
    roles: tuple[str, ...]
    using: str | None = None
    with_check: str | None = None


@dataclass(frozen=True)
class Grant:
    """Table privileges for a role; with `columns`, column privileges."""

    role: str
    privileges: tuple[Privilege, ...]
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Index:
    """An index Piccolo's column options cannot express (composite, GIN...)."""

    name: str
    definition: str  # e.g. "(user_id, created_at DESC, id DESC)"
    method: Literal["btree", "gin", "hnsw"] = "btree"


@dataclass(frozen=True)
class Extension:
    """A PostgreSQL extension a table needs, e.g. pgvector for `vector`.

    Created where missing, in `schema` (Supabase keeps extensions in
    `extensions`); an existing installation is used where it is, never
    moved or altered. Migrations refuse to start when `min_version` cannot
    be had (centrid.db.migrations.preflight), and `piccolo centrid check`
    reports an installation older than it.
    """

    name: str
    min_version: str
    schema: str = "extensions"
    # How an operator gets it, for the preflight's message.
    hint: str = ""

    @property
    def min_version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.min_version)


def version_tuple(version: str) -> tuple[int, ...]:
    """"0.8.1" -> (0, 8, 1); non-numeric suffixes ("0.8.0-rc1") are cut."""
    parts: list[int] = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class GeneratedTsvector:
    """A tsvector column kept by the database from a text column."""

    column: str
    source: str
    config: str = "english"


StorageMode = Literal["plain", "main", "external", "extended"]


@dataclass(frozen=True)
class ColumnStorage:
    """One column's storage mode (ALTER COLUMN ... SET STORAGE)."""

    column: str
    mode: StorageMode


@dataclass(frozen=True)
class TableStorage:
    """Where PostgreSQL keeps a table's values: in the row, or out of line.

    Why it is declared at all: a row over ~2 kB is shrunk by compressing
    and moving values out of line, into the table's TOAST relation, largest
    first; a value out of line costs an index lookup and a fetch each time
    it is read. A query that reads one column of *every* row it considers
    (an exact vector ranking reads each candidate's embedding, a keyword
    match each one's tsvector) wants that column in the row: `columns` set
    them MAIN (moved out only as a last resort) and `toast_tuple_target`
    lets a row keep them up to that size, while the other values (the
    chunk's text, read for ten hits) go first. docs/BENCHMARKS.md, "Chunk
    storage", has the measurements.

    A change applies to rows written after it; rows already written keep
    their layout until the table is rewritten (VACUUM FULL,
    docs/OPERATIONS.md). It is planned apart from the table's security
    (centrid.schema.plan), so changing it costs an ALTER, never the
    table's policies and indexes dropped and rebuilt.
    """

    columns: tuple[ColumnStorage, ...] = ()
    # Bytes (128-8160); None: PostgreSQL's default, about 2 kB.
    toast_tuple_target: int | None = None

    def __post_init__(self) -> None:
        target = self.toast_tuple_target
        if target is not None and not 128 <= target <= 8160:
            raise ValueError(f"toast_tuple_target {target}: PostgreSQL accepts 128 to 8160 bytes")


@dataclass(frozen=True)
class InheritedOwner:
    """The parent row's owner, copied onto each child row by the database.

    Why: a child table reachable only through its parent (chunks through
    their document) makes every owner-scoped query a join, and gives the
    planner no statistics on how many rows a user has; a user's share of a
    million chunks cannot be estimated, ranked or bitmapped by one index.
    The copy is the database's to keep, never a client's: a BEFORE INSERT
    or UPDATE (of the link or the copy) trigger sets it from the parent,
    and a composite foreign key `(via, column) -> parent (key, column)` ON
    UPDATE CASCADE makes a child that disagrees with its parent impossible,
    also when the parent changes owner. The parent needs a UNIQUE (key,
    column) constraint (declared on its table class). Existing rows are
    filled in by the migration that adds it.
    """

    column: str
    via: str  # this table's link to the parent, e.g. "document_id"
    parent: str  # the parent table in public, e.g. "documents"
    parent_key: str = "id"
    parent_column: str = "user_id"
    # The key's actions: a child follows its parent's owner and goes with it.
    on_update: str = "CASCADE"
    on_delete: str = "CASCADE"

    def function_name(self, table: str) -> str:
        return f"public.centrid_{table}_{self.column}_from_{self.parent}"

    def trigger_name(self, table: str) -> str:
        return f"{table}_{self.column}_from_{self.parent}"

    def constraint_name(self, table: str) -> str:
        return f"{table}_{self.column}_from_{self.parent}_fkey"


@dataclass(frozen=True)
class TableSecurity:
    """Everything the database enforces on one table, beside its class.

    `owned_by` (a predicate such as `owned_by_caller()`) with `writable`
    adds the owner policies, named after `table`: SELECT plus the listed
    write commands for `authenticated` (see `owner_policies`). They come
    before any `policies` given; `policies` then holds them all.
    """

    table: type[Table]
    grants: tuple[Grant, ...]
    policies: tuple[Policy, ...] = ()
    # Column that defaults to auth.uid() for a user's own rows.
    owner_default: str | None = None
    touch_updated_at: bool = True
    tsvector: GeneratedTsvector | None = None
    # An owner column kept from the parent row (before indexes and policies
    # that use it).
    inherited_owner: InheritedOwner | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    # How its values are laid out (not security: planned apart from it).
    storage: TableStorage | None = None
    # Extensions the table's columns or indexes need (created before it).
    extensions: tuple[Extension, ...] = field(default_factory=tuple)
    owned_by: InitVar[str | None] = None
    writable: InitVar[tuple[Command, ...]] = ()

    def __post_init__(self, owned_by: str | None, writable: tuple[Command, ...]) -> None:
        if owned_by is not None:
            derived = owner_policies(self.tablename, owned_by, writable=writable)
            # Frozen: set once, here, so `policies` is the whole set for every reader.
            object.__setattr__(self, "policies", (*derived, *self.policies))
        elif writable:
            raise ValueError(f"{self.tablename}: `writable` needs `owned_by`, the predicate that guards it")

    @property
    def tablename(self) -> str:
        name: str = self.table._meta.tablename
        return name

    def column_types(self) -> dict[str, str]:
        """Every column the table has once migrated, with its type: its
        class's, then those this declaration adds (the generated tsvector,
        the copied owner)."""
        types = {c._meta.db_column_name: str(c.column_type) for c in self.table._meta.columns}
        if self.tsvector is not None:
            types[self.tsvector.column] = "tsvector"
        if self.inherited_owner is not None:
            types[self.inherited_owner.column] = "uuid"
        return types


def owner_policies(table: str, predicate: str, *, writable: tuple[Command, ...]) -> tuple[Policy, ...]:
    """SELECT plus the given write commands for `authenticated`, all guarded
    by `predicate`. Writes carry WITH CHECK so a row can never be created
    for, or moved to, someone else."""
    policies = [Policy(f"{table}_select_own", "SELECT", (AUTHENTICATED,), using=predicate)]
    for command in writable:
        lower = command.lower()
        if command == "INSERT":
            policies.append(Policy(f"{table}_{lower}_own", command, (AUTHENTICATED,), with_check=predicate))
        elif command == "UPDATE":
            policies.append(
                Policy(f"{table}_{lower}_own", command, (AUTHENTICATED,), using=predicate, with_check=predicate)
            )
        else:
            policies.append(Policy(f"{table}_{lower}_own", command, (AUTHENTICATED,), using=predicate))
    return tuple(policies)


def owned_by_caller(column: str = "user_id") -> str:
    return f"{column} = {CURRENT_UID}"


def service_grants(*, insert_only: bool = False) -> tuple[Grant, ...]:
    """service_role (BYPASSRLS) and the admin role see and change every row."""
    privileges: tuple[Privilege, ...] = (
        ("SELECT", "INSERT") if insert_only else ("SELECT", "INSERT", "UPDATE", "DELETE")
    )
    return (Grant(SERVICE_ROLE, privileges), Grant(ADMIN_ROLE, privileges))
