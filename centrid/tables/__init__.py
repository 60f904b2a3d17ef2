"""The six tables, each module holding a class and the security beside it."""

from centrid.security.declarations import TableSecurity
from centrid.tables.agents import AgentRequest, AgentSession
from centrid.tables.agents import REQUEST_SECURITY, SESSION_SECURITY
from centrid.tables.auth import AuthUser
from centrid.tables.documents import CHUNK_SECURITY, DOCUMENT_SECURITY, Document, DocumentChunk
from centrid.tables.profiles import PROFILE_SECURITY, UserProfile
from centrid.tables.usage import USAGE_SECURITY, UsageEvent

# Order matters for creation: parents before children.
TABLE_CLASSES = [UserProfile, Document, DocumentChunk, AgentRequest, AgentSession, UsageEvent]

SECURITY: tuple[TableSecurity, ...] = (
    PROFILE_SECURITY,
    DOCUMENT_SECURITY,
    CHUNK_SECURITY,
    REQUEST_SECURITY,
    SESSION_SECURITY,
    USAGE_SECURITY,
)

__all__ = [
    "AgentRequest",
    "AgentSession",
    "AuthUser",
    "Document",
    "DocumentChunk",
    "SECURITY",
    "TABLE_CLASSES",
    "UsageEvent",
    "UserProfile",
]
