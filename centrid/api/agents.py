"""Agent requests and agent sessions."""

from __future__ import annotations

from piccolo.custom_types import Combinable

from centrid.api import models
from centrid.api.http import Endpoint
from centrid.api.params import AgentRequestQuery, PageQuery
from centrid.api.resources import Resource
from centrid.schema.tables import AgentRequest, AgentSession


def _request_filters(q: AgentRequestQuery) -> list[Combinable]:
    where: list[Combinable] = []
    if q.status is not None:
        where.append(AgentRequest.status == q.status)
    if q.agent_type is not None:
        where.append(AgentRequest.agent_type == q.agent_type)
    return where


def _no_filters(q: PageQuery) -> list[Combinable]:
    return []


AGENT_REQUESTS: Resource[models.AgentRequest, AgentRequestQuery] = Resource(
    table=AgentRequest,
    path="/api/agent-requests",
    tag="agents",
    row=models.AgentRequest,
    create=models.AgentRequestCreate,
    patch=models.AgentRequestPatch,
    query=AgentRequestQuery,
    filters=_request_filters,
)

AGENT_SESSIONS: Resource[models.AgentSession, PageQuery] = Resource(
    table=AgentSession,
    path="/api/agent-sessions",
    tag="agents",
    row=models.AgentSession,
    create=models.AgentSessionCreate,
    patch=models.AgentSessionPatch,
    query=PageQuery,
    filters=_no_filters,
    # Sessions are "recently active first".
    order_column="updated_at",
)

ENDPOINTS: list[Endpoint] = [
    *AGENT_REQUESTS.endpoints("agent request"),
    *AGENT_SESSIONS.endpoints("agent session"),
]
