"""CORS with the contract's error shape for a rejected preflight.

Starlette's CORSMiddleware answers a disallowed origin, method or header
with a text/plain 400; the contract wants the JSON error body everywhere.
A subclass rewrites only that response (no extra middleware layer): same
status, same CORS headers, JSON body naming what was refused.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from centrid.errors import ApiError, error_response

_PREFIX = "Disallowed CORS "


class JsonCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        text = bytes(response.body).decode("utf-8", "replace")
        refused = [part.strip() for part in text.removeprefix(_PREFIX).split(",") if part.strip()]
        headers = {
            key: value
            for key, value in response.headers.items()
            if key.lower() not in ("content-type", "content-length")
        }
        error = ApiError(
            response.status_code,
            "cors_rejected",
            f"CORS preflight rejected: {', '.join(refused) or 'not allowed'}",
            {"rejected": refused},
        )
        return error_response(error, headers=headers)
