"""schemathesis against the ASGI app, from its own /openapi.json.

Every operation, positive and negative data, with a user token and with a
service_role token, on a fresh migrated database. Checks: no server error,
response schema / status code / content type as documented, no valid
request rejected and no invalid one accepted. It must report nothing.

The app runs in process on the test's event loop (pool and lifespan as in
production); Hypothesis runs in a worker thread and hands each request to
that loop, so the async database fixtures and the app share one loop.
Bounded by MAX_EXAMPLES per operation, mode and token (about 70 s for both
tokens on 2 cores). Tested with schemathesis 4.32 (pyproject pins >=4.3,<5).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.conftest import MigratedDB
from tests.support import bearer, create_user

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]


def _run_operation(
    operation: Any, mode: schemathesis.GenerationMode, send: Any, headers: dict[str, str],
    fix_owner: str | None, failures: list[str],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if fix_owner is not None and mode.is_positive and isinstance(case.body, dict) and "user_id" in case.body:
            # A valid id that names no user is rejected by the foreign key
            # (422) - not a schema matter; name the user that exists.
            case.body["user_id"] = fix_owner
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        response = send(kwargs)
        if mode.is_positive and _rejected_cursor_only(case, response):
            # Any string matches the schema of `cursor`, but only the ones
            # this API issued are cursors: a 422 naming it is the answer.
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            titles = [line.strip() for line in str(exc).splitlines() if line.strip().startswith("- ")]
            failures.append(
                f"{operation.label} [{mode.value}] {' '.join(titles)} -> {response.status_code}: "
                f"{kwargs.get('params')!r:.200} {kwargs.get('json', kwargs.get('content'))!r:.300} "
                f"=> {response.text[:300]}"
            )

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (an operation without parameters or body).
        assert mode.is_negative, operation.label


def _rejected_cursor_only(case: schemathesis.Case, response: httpx.Response) -> bool:
    if response.status_code != 422 or not (case.query or {}).get("cursor"):
        return False
    details = response.json()["error"]["details"]
    return [d["field"] for d in details] == ["cursor"]


@pytest.mark.parametrize("who", ["authenticated", "service_role"])
async def test_schemathesis_reports_nothing(db: MigratedDB, client: httpx.AsyncClient, who: str) -> None:
    alice = await create_user(db.owner)
    headers = bearer(alice) if who == "authenticated" else bearer(alice, role="service_role")
    document = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        request = dict(kwargs)
        method = request.pop("method")
        url = request.pop("url")
        if not request.get("cookies"):
            request.pop("cookies", None)
        if isinstance(request.get("data"), (str, bytes)):
            request["content"] = request.pop("data")
        future = asyncio.run_coroutine_threadsafe(client.request(method, url, **request), loop)
        return future.result(timeout=60)

    failures: list[str] = []

    def run_all() -> None:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                _run_operation(operation, mode, send, headers, alice if who == "service_role" else None, failures)

    await asyncio.to_thread(run_all)
    unique = list(dict.fromkeys(failures))
    assert unique == [], f"{len(unique)} failures:\n\n" + "\n\n".join(unique[:15])
    assert uuid.UUID(alice)
