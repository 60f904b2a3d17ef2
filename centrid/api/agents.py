"""Agent requests and agent sessions."""

from __future__ import annotations

from centrid.api import models
from centrid.api.filters import equals
from centrid.api.http import Endpoint
from centrid.api.params import AgentRequestQuery, PageQuery
from centrid.api.resources import Resource
from centrid.schema.tables import AgentRequest, AgentSession


AGENT_REQUESTS: Resource[models.AgentRequest, AgentRequestQuery] = Resource(
    table=AgentRequest,
    path="/api/agent-requests",
    tag="agents",
    row=models.AgentRequest,
    create=models.AgentRequestCreate,
    patch=models.AgentRequestPatch,
    query=AgentRequestQuery,
    filters=(equals(AgentRequest.status), equals(AgentRequest.agent_type)),
)

AGENT_SESSIONS: Resource[models.AgentSession, PageQuery] = Resource(
    table=AgentSession,
    path="/api/agent-sessions",
    tag="agents",
    row=models.AgentSession,
    create=models.AgentSessionCreate,
    patch=models.AgentSessionPatch,
    query=PageQuery,
    # Sessions are "recently active first".
    order_column="updated_at",
)

ENDPOINTS: list[Endpoint] = [
    *AGENT_REQUESTS.endpoints("agent request"),
    *AGENT_SESSIONS.endpoints("agent session"),
]
