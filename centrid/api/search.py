"""Chunks with their embeddings, and `POST /api/search` (keyword, semantic, hybrid).

Validation happens before any SQL: a body that fails it changes nothing.
Errors name fields by their place in the body (`0.embedding.5`,
`embedding`), never by pydantic's type names. NaN, Infinity and 1e400 are
not JSON: such a body is a 400 like any malformed one; the vector model
rejects non-finite numbers all the same.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import Response

from centrid.api import fields, models
from centrid.api.documents import MAX_CHUNKS_PER_REQUEST, _visible_document
from centrid.api.http import Endpoint, _details, caller_of, parse_query, read_json
from centrid.api.params import Query, SearchText
from centrid.errors import not_found, validation_error
from centrid.queries import chunks as chunk_queries
from centrid.queries import search as search_queries
from centrid.schema import roles

# --------------------------------------------------------------------------
# Bodies


def _validate(adapter: TypeAdapter[Any], data: Any) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise validation_error(_details(exc)) from exc


_ONE_CHUNK: TypeAdapter[models.ChunkCreate] = TypeAdapter(models.ChunkCreate)
_MANY_CHUNKS: TypeAdapter[list[models.ChunkCreate]] = TypeAdapter(list[models.ChunkCreate])
_PATCHES: TypeAdapter[list[models.ChunkPatch]] = TypeAdapter(list[models.ChunkPatch])


def _batch_size_error(count: int) -> None:
    if not 1 <= count <= MAX_CHUNKS_PER_REQUEST:
        raise validation_error(
            [{"field": None, "message": f"send 1 to {MAX_CHUNKS_PER_REQUEST} chunks", "type": "too_many"}]
        )


def _duplicates(indexes: list[int]) -> None:
    seen: set[int] = set()
    details = []
    for position, index in enumerate(indexes):
        if index in seen:
            details.append(
                {"field": f"{position}.chunk_index", "message": f"chunk_index {index} appears twice", "type": "duplicate"}
            )
        seen.add(index)
    if details:
        raise validation_error(details)


# --------------------------------------------------------------------------
# Chunks


class ChunkListQuery(Query):
    include: Literal["embedding"] | None = Field(
        default=None, description="`embedding` to include each chunk's vector in the response."
    )


def _chunk_list(rows: list[dict[str, Any]], include_embedding: bool, status: int = 200) -> Response:
    items = []
    for row in rows:
        chunk = models.Chunk.model_validate(row)
        data = chunk.model_dump(mode="json")
        if not include_embedding:
            del data["embedding"]
        items.append(data)
    return Response(orjson.dumps({"items": items}), status_code=status, media_type="application/json")


async def list_chunks(request: Request) -> Response:
    query = parse_query(request, ChunkListQuery)
    await _visible_document(request)
    include = query.include == "embedding"
    rows = await chunk_queries.list_chunks(request.path_params["id"], include_embedding=include)
    return _chunk_list(rows, include)


async def create_chunks(request: Request) -> Response:
    query = parse_query(request, ChunkListQuery)
    await _visible_document(request)
    body = await read_json(request)
    if isinstance(body, list):
        _batch_size_error(len(body))
        chunks: list[models.ChunkCreate] = _validate(_MANY_CHUNKS, body)
    else:
        chunks = [_validate(_ONE_CHUNK, body)]
    include = query.include == "embedding"
    rows = await chunk_queries.insert_chunks(
        request.path_params["id"], [c.model_dump() for c in chunks], include_embedding=include
    )
    return _chunk_list(rows, include, status=201)


async def patch_chunks(request: Request) -> Response:
    query = parse_query(request, ChunkListQuery)
    await _visible_document(request)
    body = await read_json(request)
    if not isinstance(body, list):
        raise validation_error([{"field": None, "message": "expected a JSON array of chunk changes", "type": "list_type"}])
    _batch_size_error(len(body))
    patches: list[models.ChunkPatch] = _validate(_PATCHES, body)
    details = []
    for position, patch in enumerate(patches):
        fields = patch.model_fields_set - {"chunk_index"}
        if not fields:
            details.append(
                {"field": str(position), "message": "name at least one of embedding, content, section_title",
                 "type": "missing"}
            )
        if "content" in fields and patch.content is None:
            details.append({"field": f"{position}.content", "message": "content cannot be null", "type": "null"})
    if details:
        raise validation_error(details)
    _duplicates([p.chunk_index for p in patches])
    include = query.include == "embedding"
    changes = [p.model_dump(include=p.model_fields_set) for p in patches]
    rows = await chunk_queries.patch_chunks(request.path_params["id"], changes, include_embedding=include)
    found = {r["chunk_index"] for r in rows}
    missing = [p.chunk_index for p in patches if p.chunk_index not in found]
    if missing:
        # The middleware rolls the transaction back: all or nothing.
        raise not_found(
            f"no chunk with chunk_index {missing[0]} in this document"
            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    return _chunk_list(rows, include)


# --------------------------------------------------------------------------
# Search


# Which fields each mode needs, said in the schema too, so that a client (or
# a fuzzer) reading /openapi.json knows which bodies the server accepts.
_SEARCH_VARIANTS: dict[str, Any] = {
    "anyOf": [
        {"required": ["mode", "q"], "properties": {"mode": {"const": "keyword"}}},
        {"required": ["mode", "embedding"], "properties": {"mode": {"const": "semantic"}}},
        {"required": ["mode", "q", "embedding"], "properties": {"mode": {"const": "hybrid"}}},
        {"not": {"required": ["mode"]}, "anyOf": [{"required": ["q"]}, {"required": ["embedding"]}]},
    ]
}


class SearchRequest(BaseModel):
    """Every field may be left out but none may be null (fields.OMITTED)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_SEARCH_VARIANTS)

    q: Annotated[SearchText, Field(description="Keyword query (web search syntax).")] = fields.OMITTED
    embedding: Annotated[fields.Embedding, Field(description="Query vector.")] = fields.OMITTED
    mode: Annotated[
        Literal["keyword", "semantic", "hybrid"],
        Field(description="Default: hybrid when both q and embedding are given, else the one given."),
    ] = fields.OMITTED
    limit: fields.Limit = 10
    document_ids: Annotated[
        list[uuid.UUID], Field(max_length=1000, description="Only these documents (of the caller's).")
    ] = fields.OMITTED

    @model_validator(mode="after")
    def _mode_fits(self) -> SearchRequest:
        if self.q is None and self.embedding is None:
            raise ValueError("give q, embedding or both")
        mode = self.mode or ("hybrid" if self.q is not None and self.embedding is not None else
                             "keyword" if self.q is not None else "semantic")
        if mode in ("keyword", "hybrid") and self.q is None:
            raise ValueError(f"mode {mode} needs q")
        if mode in ("semantic", "hybrid") and self.embedding is None:
            raise ValueError(f"mode {mode} needs embedding")
        self.mode = mode
        return self


class ChunkSearchHit(models.ChunkHit):
    score: float = Field(
        description="keyword: ts_rank; semantic: 1 - cosine distance; hybrid: sum of 1/(60 + rank) over the lists."
    )
    keyword_rank: int | None = Field(description="Rank in the keyword list (1 = best); null if not in it.")
    semantic_rank: int | None = Field(description="Rank in the semantic list (1 = closest); null if not in it.")
    distance: float | None = Field(description="Cosine distance to the query vector; null if not in the semantic list.")


class ChunkSearchResults(BaseModel):
    items: list[ChunkSearchHit]


_SEARCH: TypeAdapter[SearchRequest] = TypeAdapter(SearchRequest)


async def search(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error([{"field": None, "message": "expected a JSON object", "type": "object_type"}])
    req: SearchRequest = _validate(_SEARCH, body)
    caller = caller_of(request)
    owner = None
    if caller.role == roles.AUTHENTICATED and caller.sub is not None:
        owner = uuid.UUID(caller.sub)  # a planner hint; RLS decides
    scope = search_queries.Scope(
        owner=owner, document_ids=tuple(req.document_ids) if req.document_ids is not None else None
    )
    assert req.mode is not None
    hits = await search_queries.search(q=req.q, embedding=req.embedding, mode=req.mode, limit=req.limit, scope=scope)
    rows = await search_queries.hit_rows(hits, scope)
    items = [ChunkSearchHit.model_validate(r).model_dump(mode="json") for r in rows]
    for item in items:
        if item["distance"] is not None and not math.isfinite(item["distance"]):
            item["distance"] = None
    return Response(orjson.dumps({"items": items}), media_type="application/json")


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/documents/{id:uuid}/chunks", list_chunks, "A document's chunks, by chunk_index",
             "documents", response=models.ChunkList, query=ChunkListQuery),
    Endpoint("POST", "/api/documents/{id:uuid}/chunks", create_chunks,
             "Add chunks (one object or an array, atomically)", "documents",
             body=models.ChunkCreate | list[models.ChunkCreate], response=models.ChunkList, query=ChunkListQuery,
             status=201, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("PATCH", "/api/documents/{id:uuid}/chunks", patch_chunks,
             "Set embeddings (and content, section_title) of many chunks by chunk_index, all or none", "documents",
             body=list[models.ChunkPatch], response=models.ChunkList, query=ChunkListQuery,
             errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("POST", "/api/search", search,
             "Keyword, semantic or hybrid (RRF) search over the caller's chunks, best first", "search",
             body=SearchRequest, response=ChunkSearchResults, errors=(400, 401, 413, 422), reads_only=True),
]
