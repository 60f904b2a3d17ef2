"""Documents, their chunks, and full-text search over the caller's chunks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from centrid.api import models
from centrid.api.filters import equals, text_search
from centrid.api.http import Endpoint, json_response, parse_query
from centrid.api.params import DocumentQuery, SearchQuery
from centrid.api.resources import Resource
from centrid.errors import not_found
from centrid.schema.tables import Document, DocumentChunk


DOCUMENTS: Resource[models.Document, DocumentQuery] = Resource(
    table=Document,
    path="/api/documents",
    tag="documents",
    row=models.Document,
    create=models.DocumentCreate,
    patch=models.DocumentPatch,
    query=DocumentQuery,
    filters=(equals(Document.processing_status), text_search("q")),
)

MAX_CHUNKS_PER_REQUEST = 1000


async def _visible_document(request: Request) -> None:
    """404 unless the caller can see the document (RLS answers)."""
    exists = await Document.exists().where(Document.id == request.path_params["id"]).run()
    if not exists:
        raise not_found("no such document")


# Chunk endpoints (with their embeddings) live in centrid.api.search.


_SEARCH_SQL = """
SELECT c.id, c.document_id, d.filename, c.chunk_index, c.content, c.section_title,
       ts_rank(c.search_vector, query) AS rank
FROM document_chunks c
JOIN documents d ON d.id = c.document_id,
     websearch_to_tsquery('english', {}) AS query
WHERE c.search_vector @@ query
ORDER BY rank DESC, c.id
LIMIT {}
"""


async def search(request: Request) -> Response:
    q = parse_query(request, SearchQuery)
    records = await DocumentChunk.raw(_SEARCH_SQL, q.q, q.limit).run()
    hits = [models.SearchHit.model_validate(dict(r)) for r in records]
    return json_response(models.SearchResults(items=hits))


ENDPOINTS: list[Endpoint] = [
    *DOCUMENTS.endpoints("document"),
    Endpoint("GET", "/api/search", search, "Full-text search over the caller's chunks, best first", "search",
             response=models.SearchResults, query=SearchQuery, errors=(401, 422)),
]
