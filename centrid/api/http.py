"""Request parsing and response helpers shared by every handler."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from centrid.errors import bad_request, validation_error
from centrid.queries.compiled import dumps
from centrid.request.claims import ANON, Caller
from centrid.request.state import request_state

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route, described once for both routing and OpenAPI."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: Any = None  # a model or a type expression (e.g. Model | list[Model])
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = field(default=(401, 404, 422))
    # A POST that only reads (a search with a body): anon may call it like a
    # GET, and RLS answers "nothing" instead of the router answering 401.
    reads_only: bool = False


def caller_of(request: Request) -> Caller:
    return request_state(request.scope).get("caller", ANON)


def _details(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [*prefix, *err["loc"]]
        details.append({"field": ".".join(str(p) for p in loc) or None, "message": err["msg"], "type": err["type"]})
    return details


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("request body must be JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request("request body is not valid JSON", {"position": exc.pos}) from exc


async def parse_body(request: Request, model: type[ModelT], *, writes: tuple[str, str] | None = None) -> ModelT:
    """`writes` = (table, "INSERT" | "UPDATE"): what the body will be used
    for, so a 403 can name the fields the caller may not write."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise validation_error([{"field": None, "message": "expected a JSON object", "type": "object_type"}])
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(_details(exc)) from exc
    state = request_state(request.scope)
    state["fields"] = sorted(parsed.model_fields_set)
    if writes is not None:
        state["writes"] = writes
    return parsed


async def parse_body_as(request: Request, adapter: TypeAdapter[T]) -> T:
    data = await read_json(request)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise validation_error(_details(exc)) from exc


def parse_query(request: Request, model: type[ModelT]) -> ModelT:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, value)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_error(_details(exc), "invalid query parameters") from exc


def _json_default(value: Any) -> Any:
    # asyncpg returns its own uuid.UUID subclass, which orjson only takes
    # through `default`.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(payload: BaseModel | dict[str, Any], status: int = 200) -> Response:
    # Python mode, serialized by orjson: money fields become exact JSON
    # numbers (orjson.Fragment); datetimes come out as pydantic's JSON mode
    # writes them (UTC as "Z").
    data = payload.model_dump(mode="python") if isinstance(payload, BaseModel) else payload
    return Response(orjson.dumps(data, default=_json_default, option=orjson.OPT_UTC_Z), status_code=status, media_type="application/json")


def rows_response(payload: Any, status: int = 200) -> Response:
    """A payload of JSON-ready rows (centrid.queries.rows' *_json verbs),
    serialised once, straight from the database's records."""
    return Response(dumps(payload), status_code=status, media_type="application/json")


def empty_response() -> Response:
    return Response(status_code=204)
