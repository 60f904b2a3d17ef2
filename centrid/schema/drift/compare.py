"""Comparing an expected table shape with the live one, difference by difference.

Each function returns the differences of one kind, in a stable order, worded
for `piccolo centrid check`'s one-line report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg
from piccolo.columns import ForeignKey
from piccolo.table import Table

from centrid.schema.difference import Difference, Kind
from centrid.schema.drift.expected import is_serial
from centrid.schema.drift.shape import FK_ACTIONS, FOREIGN_KEYS_SQL, ColumnShape, GrantKey, TableShape, one_line
from centrid.schema.security import Grant, TableSecurity


def compare_columns(label: str, table: type[Table], expected: TableShape, live: TableShape) -> list[Difference]:
    diffs: list[Difference] = []
    serial = {c._meta.db_column_name for c in table._meta.columns if is_serial(c)}
    for name, exp in expected.columns.items():
        got = live.columns.get(name)
        if got is None:
            diffs.append(Difference(label, "column", name, f"column {exp.describe()}", "none"))
            continue
        if exp.type != got.type:
            diffs.append(Difference(label, "column", name, f"type {exp.type}", got.type))
        if exp.notnull != got.notnull:
            diffs.append(
                Difference(label, "column", name, "not null" if exp.notnull else "null", "not null" if got.notnull else "null")
            )
        if exp.generated or got.generated:
            if (exp.generated, exp.default) != (got.generated, got.default):
                diffs.append(Difference(label, "column", name, _generation(exp), _generation(got)))
        elif name in serial:
            if not (got.default or "").startswith("nextval("):
                diffs.append(Difference(label, "column", name, "default nextval(...)", _default(got)))
        elif exp.default != got.default:
            diffs.append(Difference(label, "column", name, _default(exp), _default(got)))
        if exp.storage != got.storage:
            diffs.append(Difference(label, "column", name, f"storage {_storage(exp)}", f"storage {_storage(got)}"))
        if exp.identity != got.identity:
            diffs.append(
                Difference(label, "column", name, f"identity {exp.identity or 'none'}", f"identity {got.identity or 'none'}")
            )
    for name, got in live.columns.items():
        if name not in expected.columns:
            diffs.append(Difference(label, "column", name, "no such column", f"column {got.describe()}"))
    return diffs


STORAGE_MODES = {"p": "plain", "m": "main", "e": "external", "x": "extended"}


def _storage(shape: ColumnShape) -> str:
    return STORAGE_MODES.get(shape.storage, shape.storage)


def _default(shape: ColumnShape) -> str:
    return "no default" if shape.default is None else f"default {shape.default}"


def _generation(shape: ColumnShape) -> str:
    return f"generated always as ({shape.default}) stored" if shape.generated else "not generated"


def compare_named(
    label: str, kind: Kind, expected: Mapping[str, str], live: Mapping[str, str]
) -> list[Difference]:
    diffs: list[Difference] = []
    for name, exp in expected.items():
        got = live.get(name)
        if got is None:
            diffs.append(Difference(label, kind, name, exp, "none"))
        elif got != exp:
            diffs.append(Difference(label, kind, name, exp, got))
    for name, got in live.items():
        if name not in expected:
            diffs.append(Difference(label, kind, name, "none", got))
    return diffs


def compare_policies(label: str, expected: TableShape, live: TableShape) -> list[Difference]:
    diffs: list[Difference] = []
    for name, exp in expected.policies.items():
        got = live.policies.get(name)
        if got is None:
            diffs.append(Difference(label, "policy", name, exp.describe(), "none"))
            continue
        if exp.command != got.command:
            diffs.append(Difference(label, "policy", name, f"FOR {exp.command}", f"FOR {got.command}"))
        if exp.permissive != got.permissive:
            diffs.append(
                Difference(
                    label,
                    "policy",
                    name,
                    "PERMISSIVE" if exp.permissive else "RESTRICTIVE",
                    "PERMISSIVE" if got.permissive else "RESTRICTIVE",
                )
            )
        if exp.roles != got.roles:
            diffs.append(Difference(label, "policy", name, f"TO {', '.join(exp.roles)}", f"TO {', '.join(got.roles)}"))
        if exp.using != got.using:
            diffs.append(Difference(label, "policy", name, _clause("USING", exp.using), _clause("USING", got.using)))
        if exp.with_check != got.with_check:
            diffs.append(
                Difference(label, "policy", name, _clause("WITH CHECK", exp.with_check), _clause("WITH CHECK", got.with_check))
            )
    for name, got in live.policies.items():
        if name not in expected.policies:
            diffs.append(Difference(label, "policy", name, "none", got.describe()))
    return diffs


def _clause(keyword: str, expr: str | None) -> str:
    return f"no {keyword}" if expr is None else f"{keyword} ({one_line(expr)})"


def _fk_text(ref_schema: str, ref_table: str, ref_columns: Sequence[str], on_delete: str, on_update: str) -> str:
    target = ref_table if ref_schema == "public" else f"{ref_schema}.{ref_table}"
    return f"REFERENCES {target}({', '.join(ref_columns)}) ON DELETE {on_delete} ON UPDATE {on_update}"


async def compare_foreign_keys(
    conn: asyncpg.Connection, label: str, table: type[Table], oid: int, sec: TableSecurity | None = None
) -> list[Difference]:
    """Piccolo's foreign keys, and the composite one an InheritedOwner
    declares, against the live table's."""
    expected: dict[tuple[str, ...], str] = {}
    owner = sec.inherited_owner if sec is not None else None
    if owner is not None:
        expected[(owner.via, owner.column)] = _fk_text(
            "public", owner.parent, [owner.parent_key, owner.parent_column], owner.on_delete, owner.on_update
        )
    for column in table._meta.columns:
        if isinstance(column, ForeignKey):
            fk = column._foreign_key_meta
            ref = fk.resolved_references
            expected[(column._meta.db_column_name,)] = _fk_text(
                ref._meta.schema or "public",
                ref._meta.tablename,
                [fk.resolved_target_column._meta.db_column_name],
                fk.on_delete.value,
                fk.on_update.value,
            )
    live: dict[tuple[str, ...], str] = {}
    for r in await conn.fetch(FOREIGN_KEYS_SQL, oid):
        text = _fk_text(
            r["ref_schema"],
            r["ref_table"],
            list(r["ref_columns"]),
            FK_ACTIONS.get(r["on_delete"], r["on_delete"]),
            FK_ACTIONS.get(r["on_update"], r["on_update"]),
        )
        live[tuple(r["columns"])] = text if r["validated"] else text + " NOT VALID"
    diffs: list[Difference] = []
    for columns in [*expected, *(c for c in live if c not in expected)]:
        exp, got = expected.get(columns, "no foreign key"), live.get(columns, "no foreign key")
        if exp != got:
            if len(columns) == 1:
                diffs.append(Difference(label, "column", columns[0], exp, got))
            else:
                diffs.append(Difference(label, "foreign key", f"({', '.join(columns)})", exp, got))
    return diffs


def _grant_name(key: GrantKey) -> str:
    column, grantee, privilege = key
    return f"{privilege} to {grantee}" if column is None else f"{privilege} ({column}) to {grantee}"


def compare_grants(label: str, expected: Iterable[GrantKey], live: Mapping[GrantKey, bool]) -> list[Difference]:
    """`live` maps each privilege to whether it is WITH GRANT OPTION; none
    of ours is."""
    wanted = set(expected)

    def order(key: GrantKey) -> tuple[str, str, str]:
        return (key[0] or "", key[1], key[2])

    diffs: list[Difference] = []
    for key in sorted(wanted | set(live), key=order):
        if key not in live:
            diffs.append(Difference(label, "grant", _grant_name(key), "granted", "not granted"))
        elif key not in wanted:
            found = "granted WITH GRANT OPTION" if live[key] else "granted"
            diffs.append(Difference(label, "grant", _grant_name(key), "not granted", found))
        elif live[key]:
            diffs.append(Difference(label, "grant", _grant_name(key), "granted", "granted WITH GRANT OPTION"))
    return diffs


def grant_keys(grants: Iterable[Grant]) -> set[GrantKey]:
    """The privileges declared grants give, as the catalogs list them."""
    out: set[GrantKey] = set()
    for g in grants:
        for privilege in g.privileges:
            if g.columns:
                out.update((c, g.role, privilege) for c in g.columns)
            else:
                out.add((None, g.role, privilege))
    return out


def compare_options(label: str, expected: TableShape, live: TableShape) -> list[Difference]:
    """Storage parameters (TableStorage.toast_tuple_target), as pg_class lists them."""
    if expected.options == live.options:
        return []
    return [Difference(label, "storage", "", _options(expected.options), _options(live.options))]


def _options(options: tuple[str, ...]) -> str:
    return f"({', '.join(options)})" if options else "no storage parameters"


def compare_rls(label: str, expected: TableShape | None, live: TableShape) -> list[Difference]:
    """Enabled and not forced, as every security migration leaves a table
    (`expected` None: a table with no shape of its own to compare, the internal ones)."""
    rls, force_rls = (True, False) if expected is None else (expected.rls, expected.force_rls)
    diffs: list[Difference] = []
    if rls != live.rls:
        diffs.append(Difference(label, "rls", "", _rls(rls), _rls(live.rls)))
    if force_rls != live.force_rls:
        diffs.append(Difference(label, "rls", "", _forced(force_rls), _forced(live.force_rls)))
    return diffs


def _rls(enabled: bool) -> str:
    return "row level security enabled" if enabled else "disabled"


def _forced(forced: bool) -> str:
    return "FORCE ROW LEVEL SECURITY" if forced else "row level security not forced"
