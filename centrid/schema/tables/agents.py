"""`agent_requests` (one unit of AI work) and `agent_sessions` (a chain of them).

A user asks; only the service executes: status, progress, results and
token_cost are written by service_role alone.
"""

from typing import Literal

from piccolo.columns import JSONB, UUID, Integer, Real, Text
from piccolo.constraints import Check
from piccolo.table import Table

from centrid.schema.security import ANON, AUTHENTICATED, Grant, Index, TableSecurity, owned_by_caller, service_grants
from centrid.schema.tables.columns import created_at, one_of, owner, updated_at

# The allowed values, stated once: the CHECKs below and the API's models use them.
AgentType = Literal["create", "edit", "research"]
RequestStatus = Literal["pending", "processing", "completed", "failed"]


class AgentRequest(Table, tablename="agent_requests"):
    id = UUID(primary_key=True)
    user_id = owner(index=False)
    agent_type = Text(null=False, default=None)
    content = Text(null=False, default=None)
    status = Text(default="pending", null=False, index=True)
    progress = Real(default=0.0, null=False)
    results = JSONB(null=True, default=None)
    token_cost = Integer(null=True, default=None)
    created_at = created_at()
    updated_at = updated_at()

    agent_requests_agent_type_check = one_of("agent_type", AgentType)
    agent_requests_status_check = one_of("status", RequestStatus)
    agent_requests_progress_check = Check("progress >= 0 AND progress <= 1")
    agent_requests_token_cost_check = Check(
        "token_cost IS NULL OR token_cost >= 0")


REQUEST_SECURITY = TableSecurity(
    table=AgentRequest,
    owned_by=owned_by_caller(),
    writable=("INSERT", "UPDATE", "DELETE"),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT", "DELETE")),
        # status, progress, results and token_cost: the service's alone.
        Grant(AUTHENTICATED, ("INSERT",), columns=("user_id", "agent_type", "content")),
        Grant(AUTHENTICATED, ("UPDATE",), columns=("agent_type", "content")),
        *service_grants(),
    ),
    owner_default="user_id",
    indexes=(
        Index("agent_requests_user_created_idx", "(user_id, created_at DESC, id DESC)"),
        Index("agent_requests_user_status_created_idx", "(user_id, status, created_at DESC, id DESC)"),
    ),
)


class AgentSession(Table, tablename="agent_sessions"):
    id = UUID(primary_key=True)
    user_id = owner(index=False)
    request_chain = JSONB(default=[], null=False)
    context_state = JSONB(null=True, default=None)
    created_at = created_at()
    updated_at = updated_at()


SESSION_SECURITY = TableSecurity(
    table=AgentSession,
    owned_by=owned_by_caller(),
    writable=("INSERT", "UPDATE", "DELETE"),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT", "DELETE")),
        Grant(AUTHENTICATED, ("INSERT",), columns=("user_id", "request_chain", "context_state")),
        Grant(AUTHENTICATED, ("UPDATE",), columns=("request_chain", "context_state")),
        *service_grants(),
    ),
    owner_default="user_id",
    indexes=(Index("agent_sessions_user_updated_idx", "(user_id, updated_at DESC, id DESC)"),),
)
