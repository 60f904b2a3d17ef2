"""The registry: every table of the app, as its TableSecurity declaration.

`SECURITY` is the one list to edit when a table is added or removed. Each
declaration carries its class (`table=`), so the table classes Piccolo
migrates (`TABLE_CLASSES`, centrid.piccolo_app), the admin's tables, the
table names the API's error mapping recognises and the drift check all
follow from it: a class cannot be registered without its security, nor
security declared for a class the app does not know.
"""

from piccolo.table import Table

from centrid.schema.security import TableSecurity
from centrid.schema.tables.agents import REQUEST_SECURITY, SESSION_SECURITY, AgentRequest, AgentSession
from centrid.schema.tables.auth import AuthUser
from centrid.schema.tables.documents import CHUNK_SECURITY, DOCUMENT_SECURITY, Document, DocumentChunk
from centrid.schema.tables.profiles import PROFILE_SECURITY, UserProfile
from centrid.schema.tables.usage import USAGE_SECURITY, UsageEvent

# Order matters for creation: parents before children.
SECURITY: tuple[TableSecurity, ...] = (
    PROFILE_SECURITY,
    DOCUMENT_SECURITY,
    CHUNK_SECURITY,
    REQUEST_SECURITY,
    SESSION_SECURITY,
    USAGE_SECURITY,
)

# Derived; never edited by hand.
TABLE_CLASSES: list[type[Table]] = [sec.table for sec in SECURITY]
TABLE_NAMES: tuple[str, ...] = tuple(sec.tablename for sec in SECURITY)

__all__ = [
    "AgentRequest",
    "AgentSession",
    "AuthUser",
    "Document",
    "DocumentChunk",
    "SECURITY",
    "TABLE_CLASSES",
    "TABLE_NAMES",
    "UsageEvent",
    "UserProfile",
]
