"""Usage events (written by the service only) and their summary."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from centrid.api import models
from centrid.api.filters import at_or_after, before, equals
from centrid.api.http import Endpoint, json_response, parse_query
from centrid.api.params import SummaryQuery, UsageEventQuery
from centrid.api.resources import Resource
from centrid.schema.tables import UsageEvent


USAGE_EVENTS: Resource[models.UsageEvent, UsageEventQuery] = Resource(
    table=UsageEvent,
    path="/api/usage-events",
    tag="usage",
    row=models.UsageEvent,
    # Only service_role holds INSERT on usage_events; a user's POST is
    # refused by the database (403), not by a handler.
    create=models.UsageEventCreate,
    query=UsageEventQuery,
    filters=(
        equals(UsageEvent.event_type),
        at_or_after(UsageEvent.created_at, "since"),
        before(UsageEvent.created_at, "until"),
    ),
)


_SUMMARY_SQL = """
SELECT event_type,
       count(*) AS events,
       coalesce(sum(tokens_used), 0)::bigint AS tokens_used,
       coalesce(sum(cost), 0) AS cost
FROM usage_events
WHERE ({} :: timestamptz IS NULL OR created_at >= {})
  AND ({} :: timestamptz IS NULL OR created_at < {})
  AND ({} :: uuid IS NULL OR user_id = {})
GROUP BY event_type
ORDER BY event_type
"""


async def summary(request: Request) -> Response:
    q = parse_query(request, SummaryQuery)
    records = await UsageEvent.raw(_SUMMARY_SQL, q.since, q.since, q.until, q.until, q.user_id, q.user_id).run()
    totals = [models.UsageTotal.model_validate(dict(r)) for r in records]
    return json_response(models.UsageSummary(since=q.since, until=q.until, totals=totals))


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/usage-events", USAGE_EVENTS.list_many, "List usage events, newest first", "usage",
             response=USAGE_EVENTS.page_model, query=UsageEventQuery),
    Endpoint("POST", "/api/usage-events", USAGE_EVENTS.create_one, "Record a usage event (service_role only)", "usage",
             body=models.UsageEventCreate, response=models.UsageEvent, status=201, errors=(400, 401, 403, 413, 422)),
    Endpoint("GET", "/api/usage/summary", summary, "Totals by event type", "usage",
             response=models.UsageSummary, query=SummaryQuery, errors=(401, 422)),
]
