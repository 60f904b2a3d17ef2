"""Documents, their chunks, and full-text search over the caller's chunks."""

from __future__ import annotations

from typing import Any

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response

from centrid.api import models
from centrid.api.http import Endpoint, json_response, parse_body_as, parse_query
from centrid.api.params import DocumentQuery, SearchQuery
from centrid.api.resources import Resource
from centrid.errors import not_found, validation_error
from centrid.queries.rows import insert_rows, select_all
from centrid.tables import Document, DocumentChunk


def _document_filters(q: DocumentQuery) -> list[Combinable]:
    where: list[Combinable] = []
    if q.processing_status is not None:
        where.append(Document.processing_status == q.processing_status)
    if q.q is not None:
        # websearch_to_tsquery never fails on user syntax: quotes, operators
        # and stray punctuation are all valid input to it.
        where.append(WhereRaw("search_vector @@ websearch_to_tsquery('english', {})", q.q))
    return where


DOCUMENTS: Resource[models.Document, DocumentQuery] = Resource(
    table=Document,
    path="/api/documents",
    tag="documents",
    row=models.Document,
    create=models.DocumentCreate,
    patch=models.DocumentPatch,
    query=DocumentQuery,
    filters=_document_filters,
)

MAX_CHUNKS_PER_REQUEST = 1000
_ChunkBody = models.ChunkCreate | list[models.ChunkCreate]
_CHUNKS_ADAPTER: TypeAdapter[Any] = TypeAdapter(_ChunkBody)


async def _visible_document(request: Request) -> None:
    """404 unless the caller can see the document (RLS answers)."""
    exists = await Document.exists().where(Document.id == request.path_params["id"]).run()
    if not exists:
        raise not_found("no such document")


async def list_chunks(request: Request) -> Response:
    await _visible_document(request)
    rows = await select_all(
        DocumentChunk, models.Chunk, DocumentChunk.document_id == request.path_params["id"],
        order_by=[DocumentChunk.chunk_index],
    )
    return json_response(models.ChunkList(items=rows))


async def create_chunks(request: Request) -> Response:
    await _visible_document(request)
    body = await parse_body_as(request, _CHUNKS_ADAPTER)
    chunks: list[models.ChunkCreate] = body if isinstance(body, list) else [body]
    if not chunks or len(chunks) > MAX_CHUNKS_PER_REQUEST:
        raise validation_error(
            [{"field": None, "message": f"send 1 to {MAX_CHUNKS_PER_REQUEST} chunks", "type": "too_many"}]
        )
    document_id = request.path_params["id"]
    rows = [
        {
            "document_id": document_id,
            "chunk_index": c.chunk_index,
            "content": c.content,
            "section_title": c.section_title,
        }
        for c in chunks
    ]
    # One INSERT statement: every chunk or none.
    created = await insert_rows(DocumentChunk, rows, models.Chunk)
    created.sort(key=lambda c: c.chunk_index)
    return json_response(models.ChunkList(items=created), status=201)


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
    Endpoint("GET", "/api/documents/{id:uuid}/chunks", list_chunks, "A document's chunks, by chunk_index",
             "documents", response=models.ChunkList),
    Endpoint("POST", "/api/documents/{id:uuid}/chunks", create_chunks,
             "Add chunks (one object or an array, atomically)", "documents",
             body=_ChunkBody, response=models.ChunkList, status=201, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("GET", "/api/search", search, "Full-text search over the caller's chunks, best first", "search",
             response=models.SearchResults, query=SearchQuery, errors=(401, 422)),
]
