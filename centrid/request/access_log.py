"""Request ids and the access log: the outermost middleware.

Outside CORS and the request scope, so that every response - a CORS
preflight, a 401 from a bad token, a 413, a 503 - carries X-Request-ID and
yields exactly one structured log line (id, method, path, status, duration,
role, user id; never the token). The same place records the request's
Prometheus metrics when CENTRID_METRICS_PORT is set (centrid.metrics).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from centrid import metrics
from centrid.logs import JsonEvent
from centrid.request.buffering import ClientDisconnected
from centrid.request.state import request_headers, request_state

access_log = logging.getLogger("centrid.access")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Status logged when the client left before a response was sent (nginx's convention).
CLIENT_CLOSED = 499


def _incoming_request_id(scope: Scope) -> str | None:
    candidate = request_headers(scope).get("x-request-id")
    return candidate if candidate is not None and _SANE_REQUEST_ID.match(candidate) else None


def _route_template(scope: Scope) -> str:
    """The route's template (`/api/documents/{id:uuid}`), never the raw
    path, so metrics have one series per route. A request answered before
    routing (401, 413, 503, a preflight) is matched here."""
    if scope["path"] == "/admin" or scope["path"].startswith("/admin/"):
        return "/admin"
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        for candidate in getattr(app, "routes", ()):
            match, _ = candidate.matches({**scope, "method": "GET" if scope["method"] == "OPTIONS" else scope["method"]})
            if match != Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        state = request_state(scope)
        state["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnected:
            status = CLIENT_CLOSED
        finally:
            caller = state.get("caller")
            if metrics.enabled():
                metrics.record(
                    _route_template(scope),
                    scope["method"],
                    status,
                    time.perf_counter() - started,
                    state.get("database_error"),
                )
            access_log.info(
                JsonEvent(
                    {
                        "event": "request",
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "role": caller.role if caller else None,
                        "user_id": caller.sub if caller else None,
                    }
                )
            )
