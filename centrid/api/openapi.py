"""OpenAPI 3.1 generated from the same Endpoint list and pydantic models
that route and validate requests, so the description cannot drift."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from centrid.api.http import Endpoint, json_response

_REF_TEMPLATE = "#/components/schemas/{model}"

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}

_STATUS_TEXT = {
    400: "Malformed JSON",
    401: "Authentication required or token rejected",
    403: "Not allowed to change this (a protected column or another owner)",
    404: "No such row for this caller",
    405: "Method not allowed",
    409: "Conflict",
    413: "Body over the limit",
    422: "Validation failed (per-field details)",
    503: "Database unavailable",
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": _ERROR_SCHEMA}

    def ref(self, annotation: Any) -> dict[str, Any]:
        schema = TypeAdapter(annotation).json_schema(ref_template=_REF_TEMPLATE, mode="serialization")
        return self._hoist(schema)

    def ref_input(self, annotation: Any) -> dict[str, Any]:
        schema = TypeAdapter(annotation).json_schema(ref_template=_REF_TEMPLATE, mode="validation")
        return self._hoist(schema)

    def _hoist(self, schema: dict[str, Any]) -> dict[str, Any]:
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, _without_null_defaults(definition))
        schema = _without_null_defaults(schema)
        if "title" in schema and schema.get("type") == "object":
            # OpenAPI component names match ^[a-zA-Z0-9.\-_]+$: a generic's
            # title (ListOf[Document]) becomes ListOfDocument.
            name = _component_name(schema["title"])
            schema["title"] = name
            self.components.setdefault(name, schema)
            return {"$ref": _REF_TEMPLATE.format(model=name)}
        return schema


def _component_name(title: str) -> str:
    return re.sub(r"[^a-zA-Z0-9.\-_]", "", title)


def _nullable(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "null" or "null" in (schema.get("type") or []):
        return True
    return any(_nullable(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _without_null_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional NOT NULL field (models.OMITTED) has the Python default
    None, which is "absent", not a value: it must not appear as
    `"default": null` on a property that does not accept null."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict) and "default" in prop and prop["default"] is None and not _nullable(prop):
                del prop["default"]
    return schema


def _path_parameters(path: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    parts = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name, _, convertor = segment[1:-1].partition(":")
            schema: dict[str, Any] = {"type": "string"}
            if convertor == "uuid":
                schema["format"] = "uuid"
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
            parts.append("{" + name + "}")
        else:
            parts.append(segment)
    return "/".join(parts), params


def _query_parameters(model: type[BaseModel], schemas: _Schemas) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.components.setdefault(name, definition)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def build_openapi(endpoints: list[Endpoint], *, title: str, version: str, extra_paths: dict[str, Any]) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for ep in endpoints:
        path, parameters = _path_parameters(ep.path)
        if ep.query is not None:
            parameters += _query_parameters(ep.query, schemas)
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "tags": [ep.tag],
            "operationId": f"{ep.method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "parameters": parameters,
            "security": [{"bearer": []}, {}],
        }
        if ep.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref_input(ep.body)}},
            }
        success: dict[str, Any] = {"description": "OK" if ep.status != 201 else "Created"}
        if ep.status == 204:
            success = {"description": "Deleted"}
        elif ep.response is not None:
            success["content"] = {"application/json": {"schema": schemas.ref(ep.response)}}
        responses: dict[str, Any] = {str(ep.status): success}
        for status in sorted({*ep.errors, 503}):
            responses[str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        operation["responses"] = responses
        paths.setdefault(path, {})[ep.method.lower()] = operation
    for path, item in extra_paths.items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def openapi_route(endpoints: list[Endpoint], *, extra_paths: dict[str, Any]) -> Route:
    """`GET /openapi.json`, rendered once: the endpoints cannot change while the app runs."""
    document = build_openapi(endpoints, title="Centrid data layer", version="0.1.0", extra_paths=extra_paths)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    return Route("/openapi.json", openapi, methods=["GET"])
