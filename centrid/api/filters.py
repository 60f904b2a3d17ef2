"""Query-string filters of the list endpoints, declared per resource.

A filter narrows what the client asked for; it never decides access (RLS
does). Declared as data, each resource names its parameters once, and the
"skip when absent" rule lives here instead of in every resource's function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from piccolo.columns import Column
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from pydantic import BaseModel


@dataclass(frozen=True)
class QueryFilter:
    """The query parameter `field` and the clause it becomes when given."""

    field: str
    clause: Callable[[Any], Combinable]

    def apply(self, query: BaseModel) -> Combinable | None:
        value = getattr(query, self.field)
        return None if value is None else self.clause(value)


def equals(column: Column, field: str | None = None) -> QueryFilter:
    return QueryFilter(field or column._meta.name, lambda value: column == value)


def at_or_after(column: Column, field: str) -> QueryFilter:
    return QueryFilter(field, lambda value: column >= value)


def before(column: Column, field: str) -> QueryFilter:
    return QueryFilter(field, lambda value: column < value)


def text_search(field: str, vector_column: str = "search_vector") -> QueryFilter:
    # websearch_to_tsquery never fails on user syntax: quotes, operators and
    # stray punctuation are all valid input to it.
    return QueryFilter(
        field, lambda value: WhereRaw(f"{vector_column} @@ websearch_to_tsquery('english', {{}})", value)
    )


def where_clauses(filters: Sequence[QueryFilter], query: BaseModel) -> list[Combinable]:
    return [clause for f in filters if (clause := f.apply(query)) is not None]
