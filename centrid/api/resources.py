"""The five verbs for a user-owned table, written once.

documents, agent_requests and agent_sessions share them; each passes its
models and filters. Access is never filtered here: `where` clauses only
express what the client asked for; RLS decides what exists for the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from piccolo.custom_types import Combinable
from piccolo.table import Table
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from centrid.api.filters import QueryFilter, equals, where_clauses
from centrid.api.http import Endpoint, empty_response, json_response, parse_body, parse_query, rows_response
from centrid.api.models import Input, ListOf, Row
from centrid.api.params import PageQuery
from centrid.errors import not_found, validation_error
from centrid.queries.rows import (
    InvalidCursor,
    delete_where,
    insert_one_json,
    select_one,
    select_one_json,
    select_page_json,
    update_where,
)

RowT = TypeVar("RowT", bound=Row)
QueryT = TypeVar("QueryT", bound=PageQuery)


@dataclass(frozen=True)
class Resource(Generic[RowT, QueryT]):
    table: type[Table]
    path: str  # e.g. "/api/documents"
    tag: str
    row: type[RowT]
    create: type[Input]
    query: type[QueryT]
    # The list endpoint's parameters besides paging and `user_id`.
    filters: tuple[QueryFilter, ...] = ()
    # None for tables whose rows are never changed (the usage ledger).
    patch: type[Input] | None = None
    order_column: str = "created_at"

    def __post_init__(self) -> None:
        unknown = {f.field for f in self.filters} - set(self.query.model_fields)
        assert not unknown, f"{self.path}: filters on parameters {self.query.__name__} lacks: {unknown}"

    @property
    def page_model(self) -> type[BaseModel]:
        """ListOf[<row>], built at run time for routing and OpenAPI."""
        model = ListOf.__class_getitem__(self.row)
        assert isinstance(model, type) and issubclass(model, BaseModel)
        return model

    def _by_id(self, request: Request) -> Combinable:
        pk = self.table._meta.primary_key
        clause: Combinable = pk == request.path_params["id"]
        return clause

    async def list_many(self, request: Request) -> Response:
        q = parse_query(request, self.query)
        owner = equals(self.table._meta.get_column_by_name("user_id"))
        where = where_clauses((*self.filters, owner), q)
        try:
            page = await select_page_json(
                self.table, self.row, where, order_column=self.order_column, limit=q.limit, cursor=q.cursor
            )
        except InvalidCursor as exc:
            raise validation_error([{"field": "cursor", "message": str(exc), "type": "cursor"}]) from exc
        return rows_response(page)

    async def create_one(self, request: Request) -> Response:
        body = await parse_body(request, self.create, writes=(self.table._meta.tablename, "INSERT"))
        return rows_response(await insert_one_json(self.table, body.supplied(), self.row), status=201)

    async def get_one(self, request: Request) -> Response:
        row = await select_one_json(self.table, self.row, self._by_id(request))
        if row is None:
            raise not_found()
        return rows_response(row)

    async def patch_one(self, request: Request) -> Response:
        if self.patch is None:
            raise RuntimeError(f"{self.path} rows are never changed")
        body = await parse_body(request, self.patch, writes=(self.table._meta.tablename, "UPDATE"))
        values = body.supplied()
        if not values:
            row = await select_one(self.table, self.row, self._by_id(request))
        else:
            rows = await update_where(self.table, values, self.row, self._by_id(request))
            row = rows[0] if rows else None
        if row is None:
            raise not_found()
        return json_response(row)

    async def delete_one(self, request: Request) -> Response:
        if await delete_where(self.table, self._by_id(request)) == 0:
            raise not_found()
        return empty_response()

    def endpoints(self, noun: str) -> list[Endpoint]:
        item = self.path + "/{id:uuid}"
        endpoints = [
            Endpoint("GET", self.path, self.list_many, f"List {noun}s, newest first", self.tag,
                     response=self.page_model, query=self.query),
            Endpoint("POST", self.path, self.create_one, f"Create a {noun}", self.tag,
                     body=self.create, response=self.row, status=201, errors=(400, 401, 403, 413, 422)),
            Endpoint("GET", item, self.get_one, f"Get a {noun}", self.tag, response=self.row),
            Endpoint("DELETE", item, self.delete_one, f"Delete a {noun}", self.tag, status=204),
        ]
        if self.patch is not None:
            endpoints.append(Endpoint("PATCH", item, self.patch_one, f"Change a {noun}", self.tag,
                                      body=self.patch, response=self.row, errors=(400, 401, 403, 404, 413, 422)))
        return endpoints
