"""GET /metrics on CENTRID_METRICS_PORT, scraped after a few requests."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import httpx

from tests.api_support import app_client
from tests.conftest import MigratedDB
from tests.crash_support import free_port
from tests.support import bearer, create_user


def _value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` (labels in any order), 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


async def test_metrics_after_a_few_requests(db: MigratedDB, app_settings: Any) -> None:
    port = free_port()
    cfg = dataclasses.replace(app_settings, metrics_port=port, host="127.0.0.1")
    alice = await create_user(db.owner)
    async with app_client(cfg) as (_, client):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as scraper:
            before = (await scraper.get("/metrics")).text
            for _ in range(3):
                r = await client.post("/api/documents", json={"filename": "a", "file_type": "t", "file_size": 1},
                                      headers=bearer(alice))
                assert r.status_code == 201
            doc = r.json()["id"]
            assert (await client.get(f"/api/documents/{doc}", headers=bearer(alice))).status_code == 200
            assert (await client.get("/api/documents", headers={"Authorization": "Bearer nope"})).status_code == 401
            assert (await client.get("/no/such/path")).status_code == 404
            # A unique violation is a database error the API mapped (409).
            await client.post(f"/api/documents/{doc}/chunks", json={"chunk_index": 0, "content": "x"},
                              headers=bearer(alice))
            r = await client.post(f"/api/documents/{doc}/chunks", json={"chunk_index": 0, "content": "x"},
                                  headers=bearer(alice))
            assert r.status_code == 409

            r = await scraper.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            text = r.text

    def delta(name: str, **labels: str) -> float:
        return _value(text, name, **labels) - _value(before, name, **labels)

    assert delta("centrid_http_requests_total", route="/api/documents", method="POST", status="201") == 3
    # The route template, not the raw path with the id in it.
    assert delta("centrid_http_requests_total", route="/api/documents/{id:uuid}", method="GET", status="200") == 1
    assert doc not in text
    assert delta("centrid_http_requests_total", route="/api/documents", method="GET", status="401") == 1
    assert delta("centrid_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("centrid_http_request_duration_seconds_count", route="/api/documents", method="POST") == 3
    assert delta("centrid_database_errors_total", kind="UniqueViolationError") == 1
    for gauge in ("centrid_pool_connections_in_use", "centrid_pool_connections_idle", "centrid_pool_acquire_waiting"):
        assert re.search(rf"^{gauge} \d+(\.\d+)?$", text, re.M), gauge
    assert _value(text, "centrid_pool_connections_idle") >= 1

    # Off when unset; and the port closes with the app.
    await asyncio.sleep(0)
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
        raise AssertionError("metrics still served after shutdown")
    except httpx.TransportError:
        pass
