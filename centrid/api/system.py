"""Health, the seed's hello example."""

from __future__ import annotations

import datetime

from starlette.requests import Request
from starlette.responses import Response

from centrid.api import models
from centrid.api.http import Endpoint, caller_of, json_response
from centrid.schema.tables import TABLE_CLASSES

_COUNTS_SQL = "SELECT " + ", ".join(
    f'(SELECT count(*) FROM "{t._meta.tablename}") AS "{t._meta.tablename}"' for t in TABLE_CLASSES
)


async def hello(request: Request) -> Response:
    caller = caller_of(request)
    (counts,) = await TABLE_CLASSES[0].raw(_COUNTS_SQL).run()
    return json_response(
        models.Hello(
            message=f"Hello from Centrid, {caller.role}!",
            timestamp=datetime.datetime.now(datetime.timezone.utc),
            role=caller.role,
            user_id=caller.sub,  # type: ignore[arg-type]
            visible_rows={k: int(v) for k, v in dict(counts).items()},
        )
    )


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/hello", hello, "Greeting, timestamp, rows visible to the caller per table", "system",
             response=models.Hello, errors=(401,)),
]
