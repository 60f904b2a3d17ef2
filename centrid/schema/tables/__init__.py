"""The six tables, each module holding a class and the security beside it."""

from centrid.schema.security import TableSecurity
from centrid.schema.tables.agents import AgentRequest, AgentSession
from centrid.schema.tables.agents import REQUEST_SECURITY, SESSION_SECURITY
from centrid.schema.tables.auth import AuthUser
from centrid.schema.tables.documents import CHUNK_SECURITY, DOCUMENT_SECURITY, Document, DocumentChunk
from centrid.schema.tables.profiles import PROFILE_SECURITY, UserProfile
from centrid.schema.tables.usage import USAGE_SECURITY, UsageEvent

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
