"""/openapi.json is a valid OpenAPI document (issue 7, defect 5)."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate

COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9\.\-_]+$")


async def test_served_document_is_valid_openapi(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    document = r.json()
    bad = [name for name in document["components"]["schemas"] if not COMPONENT_NAME.match(name)]
    assert bad == []
    validate(document)  # raises with the first violation
    # Every reference resolves to a component that exists.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', r.text))
    assert refs <= set(document["components"]["schemas"])
