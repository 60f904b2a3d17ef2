"""Query-string models: validated like bodies, 422 with per-field details."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from centrid.api.fields import _NO_NUL, Timestamp, _no_nul
from centrid.api.models import AgentType, ProcessingStatus, RequestStatus

SearchText = Annotated[str, Field(min_length=1, max_length=1000, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
Cursor = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")]
FilterText = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]


class Query(BaseModel):
    # Unknown parameters are ignored, as browsers and proxies add their own.
    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: Cursor | None = None
    user_id: uuid.UUID | None = Field(
        default=None, description="Narrow to one user (useful to service_role; RLS already limits users)."
    )


class DocumentQuery(PageQuery):
    processing_status: ProcessingStatus | None = None
    q: SearchText | None = Field(default=None, description="Full-text search (web search syntax).")


class AgentRequestQuery(PageQuery):
    status: RequestStatus | None = None
    agent_type: AgentType | None = None


class UsageEventQuery(PageQuery):
    event_type: FilterText | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class SearchQuery(Query):
    q: SearchText
    limit: int = Field(default=20, ge=1, le=100)


class SummaryQuery(Query):
    since: Timestamp | None = None
    until: Timestamp | None = None
    user_id: uuid.UUID | None = None
