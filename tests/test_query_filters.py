"""The list endpoints' declared filters, without a database: an absent
parameter adds no clause, a given one adds exactly its clause, and a
resource cannot declare a filter on a parameter its query model lacks."""

from __future__ import annotations

import pytest

from centrid.api import models
from centrid.api.documents import DOCUMENTS
from centrid.api.filters import equals, text_search, where_clauses
from centrid.api.params import DocumentQuery, UsageEventQuery
from centrid.api.resources import Resource
from centrid.api.usage import USAGE_EVENTS
from centrid.schema.tables import Document


def sql(clauses: list[object]) -> list[str]:
    return [c.querystring.__str__() for c in clauses]  # type: ignore[attr-defined]


def test_absent_parameters_add_no_clause() -> None:
    assert where_clauses(DOCUMENTS.filters, DocumentQuery()) == []
    assert where_clauses(USAGE_EVENTS.filters, UsageEventQuery()) == []


def test_given_parameters_add_their_clauses_in_declared_order() -> None:
    q = DocumentQuery(processing_status="failed", q="cats")
    got = sql(where_clauses(DOCUMENTS.filters, q))
    assert got == [
        '"documents"."processing_status" = \'failed\'',
        "search_vector @@ websearch_to_tsquery('english', 'cats')",
    ]
    only_text = sql(where_clauses(DOCUMENTS.filters, DocumentQuery(q="dogs")))
    assert only_text == ["search_vector @@ websearch_to_tsquery('english', 'dogs')"]


def test_usage_window_is_half_open() -> None:
    q = UsageEventQuery.model_validate({"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"})
    got = sql(where_clauses(USAGE_EVENTS.filters, q))
    assert len(got) == 2
    assert '"usage_events"."created_at" >= ' in got[0] and '"usage_events"."created_at" < ' in got[1]


def test_a_filter_on_a_parameter_the_query_lacks_is_refused() -> None:
    with pytest.raises(AssertionError, match="lacks"):
        Resource(
            table=Document,
            path="/api/x",
            tag="x",
            row=models.Document,
            create=models.DocumentCreate,
            query=DocumentQuery,
            filters=(equals(Document.processing_status), text_search("nope")),
        )
