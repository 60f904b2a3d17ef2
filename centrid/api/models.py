"""Request and response bodies. Field names are the column names.

Input models forbid unknown fields and reject NUL characters (PostgreSQL
text cannot hold them), so bad input is a 422 before any SQL runs. Whether a
caller may write a field is not decided here: grants and RLS decide.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from centrid.api.fields import (
    OMITTED,
    Embedding,
    Fraction,
    Json,
    Money,
    MoneyIn,
    NonEmptyText,
    NonNegativeInt32,
    OwnerId,
    PositiveInt32,
    Text,
)

# The allowed values are declared once, beside their columns' CHECKs; the
# models (and so OpenAPI's enums) use the same aliases. Re-exported for params.
from centrid.schema.tables.agents import AgentType as AgentType
from centrid.schema.tables.agents import RequestStatus as RequestStatus
from centrid.schema.tables.documents import ProcessingStatus as ProcessingStatus
from centrid.schema.tables.profiles import PlanType as PlanType
from centrid.schema.tables.profiles import SubscriptionStatus as SubscriptionStatus




class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def supplied(self) -> dict[str, Any]:
        """Only the fields the client sent: absent means "leave alone"."""
        return self.model_dump(include=self.model_fields_set, mode="python")


class Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


RowT = TypeVar("RowT", bound=Row)


class ListOf(BaseModel, Generic[RowT]):
    items: list[RowT]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page; null at the end.")


# --- profiles ---------------------------------------------------------------


class Profile(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str | None
    plan_type: PlanType
    usage_count: int
    subscription_status: SubscriptionStatus
    created_at: datetime.datetime
    updated_at: datetime.datetime


class ProfilePatch(Input):
    name: Text | None = None
    plan_type: PlanType = OMITTED
    usage_count: NonNegativeInt32 = OMITTED
    subscription_status: SubscriptionStatus = OMITTED


# --- documents --------------------------------------------------------------


class Document(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    filename: str
    file_type: str
    file_size: int
    processing_status: ProcessingStatus
    content_text: str | None
    storage_path: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class DocumentCreate(Input):
    user_id: OwnerId = OMITTED
    filename: NonEmptyText
    file_type: NonEmptyText
    file_size: PositiveInt32
    processing_status: ProcessingStatus = OMITTED
    content_text: Text | None = None
    storage_path: Text | None = None


class DocumentPatch(Input):
    filename: NonEmptyText = OMITTED
    file_type: NonEmptyText = OMITTED
    file_size: PositiveInt32 = OMITTED
    processing_status: ProcessingStatus = OMITTED
    content_text: Text | None = None
    storage_path: Text | None = None


class Chunk(Row):
    id: uuid.UUID
    document_id: uuid.UUID
    chunk_index: int
    content: str
    section_title: str | None
    created_at: datetime.datetime
    has_embedding: bool
    embedding: list[float] | None = Field(
        default=None, description="The stored vector; present only with `?include=embedding`."
    )


class ChunkCreate(Input):
    chunk_index: NonNegativeInt32
    content: NonEmptyText
    section_title: Text | None = None
    embedding: Embedding | None = None


class ChunkPatch(Input):
    """Changes to one existing chunk, named by its index; absent fields are kept."""

    chunk_index: NonNegativeInt32
    embedding: Embedding | None = Field(default=None, description="A new vector; null removes it.")
    content: NonEmptyText | None = None
    section_title: Text | None = None


class ChunkList(BaseModel):
    items: list[Chunk]


class ChunkHit(BaseModel):
    """A chunk as a search answers it: with its document's filename, so an
    agent can cite the source without a second request."""

    id: uuid.UUID = Field(description="The chunk's id.")
    document_id: uuid.UUID
    filename: str
    chunk_index: int
    content: str
    section_title: str | None


class SearchHit(ChunkHit):
    rank: float


class SearchResults(BaseModel):
    items: list[SearchHit]


# --- agents -----------------------------------------------------------------


class AgentRequest(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    agent_type: AgentType
    content: str
    status: RequestStatus
    progress: float
    results: Any | None
    token_cost: int | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class AgentRequestCreate(Input):
    user_id: OwnerId = OMITTED
    agent_type: AgentType
    content: NonEmptyText
    # Service-owned: accepted from service_role only (grants decide).
    status: RequestStatus = OMITTED
    progress: Fraction = OMITTED
    results: Json | None = None
    token_cost: NonNegativeInt32 | None = None


class AgentRequestPatch(Input):
    agent_type: AgentType = OMITTED
    content: NonEmptyText = OMITTED
    status: RequestStatus = OMITTED
    progress: Fraction = OMITTED
    results: Json | None = None
    token_cost: NonNegativeInt32 | None = None


class AgentSession(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    request_chain: list[uuid.UUID]
    context_state: Any | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class AgentSessionCreate(Input):
    user_id: OwnerId = OMITTED
    request_chain: list[uuid.UUID] = Field(default_factory=list)
    context_state: Json | None = None


class AgentSessionPatch(Input):
    request_chain: list[uuid.UUID] = OMITTED
    context_state: Json | None = None


# --- usage ------------------------------------------------------------------


class UsageEvent(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    event_type: str
    tokens_used: int | None
    cost: Money | None
    metadata: Any | None
    created_at: datetime.datetime


class UsageEventCreate(Input):
    user_id: OwnerId = OMITTED
    event_type: NonEmptyText
    tokens_used: NonNegativeInt32 | None = None
    cost: MoneyIn | None = None
    metadata: Json | None = None


class UsageTotal(BaseModel):
    event_type: str
    events: int
    tokens_used: int
    cost: Money


class UsageSummary(BaseModel):
    since: datetime.datetime | None
    until: datetime.datetime | None
    totals: list[UsageTotal]


# --- system -----------------------------------------------------------------


class Hello(BaseModel):
    message: str
    timestamp: datetime.datetime
    role: str
    user_id: uuid.UUID | None
    visible_rows: dict[str, int]
