"""Request and response bodies. Field names are the column names.

Input models forbid unknown fields and reject NUL characters (PostgreSQL
text cannot hold them), so bad input is a 422 before any SQL runs. Whether a
caller may write a field is not decided here: grants and RLS decide.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ProcessingStatus = Literal["pending", "processing", "completed", "failed"]
PlanType = Literal["free", "pro", "enterprise"]
SubscriptionStatus = Literal["active", "cancelled", "expired"]
AgentType = Literal["create", "edit", "research"]
RequestStatus = Literal["pending", "processing", "completed", "failed"]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


MAX_JSON_DEPTH = 64


def _json_no_nul(value: Any) -> Any:
    """jsonb cannot hold \\u0000 at any depth; and we bound the depth, well
    under what the JSON encoder and the database accept (iteratively, so a
    hostile document cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _no_nul(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return value


def _representable_timestamp(value: datetime.datetime) -> datetime.datetime:
    """Timestamps must convert to UTC within Python's and PostgreSQL's range."""
    if value.tzinfo is None:
        raise ValueError("must include a timezone offset")
    try:
        return value.astimezone(datetime.timezone.utc)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc


Text = Annotated[str, AfterValidator(_no_nul)]
NonEmptyText = Annotated[str, Field(min_length=1), AfterValidator(_no_nul)]
Json = Annotated[Any, AfterValidator(_json_no_nul)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1, strict=True)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]
PositiveInt32 = Annotated[int, Field(gt=0, le=2**31 - 1, strict=True)]
# `real` is a 4-byte float: larger values cannot be stored.
REAL_MAX = 3.4e38
NonNegativeReal = Annotated[float, Field(ge=0, le=REAL_MAX, allow_inf_nan=False)]
Timestamp = Annotated[datetime.datetime, AfterValidator(_representable_timestamp)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


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
    plan_type: PlanType | None = None
    usage_count: NonNegativeInt32 | None = None
    subscription_status: SubscriptionStatus | None = None


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
    user_id: uuid.UUID | None = None
    filename: NonEmptyText
    file_type: NonEmptyText
    file_size: PositiveInt32
    processing_status: ProcessingStatus | None = None
    content_text: Text | None = None
    storage_path: Text | None = None


class DocumentPatch(Input):
    filename: NonEmptyText | None = None
    file_type: NonEmptyText | None = None
    file_size: PositiveInt32 | None = None
    processing_status: ProcessingStatus | None = None
    content_text: Text | None = None
    storage_path: Text | None = None


EMBEDDING_DIMENSIONS = 384
# An element of pgvector's `vector` is a 4-byte float.
VECTOR_ELEMENT_MAX = 3.4028234663852886e38
# strict: a boolean or a numeric string is not a number here.
EmbeddingElement = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-VECTOR_ELEMENT_MAX, le=VECTOR_ELEMENT_MAX)
]
Embedding = Annotated[
    list[EmbeddingElement],
    Field(
        min_length=EMBEDDING_DIMENSIONS,
        max_length=EMBEDDING_DIMENSIONS,
        description=f"Exactly {EMBEDDING_DIMENSIONS} finite numbers (compared by cosine distance).",
    ),
]


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


class SearchHit(BaseModel):
    id: uuid.UUID = Field(description="The chunk's id.")
    document_id: uuid.UUID
    filename: str
    chunk_index: int
    content: str
    section_title: str | None
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
    user_id: uuid.UUID | None = None
    agent_type: AgentType
    content: NonEmptyText
    # Service-owned: accepted from service_role only (grants decide).
    status: RequestStatus | None = None
    progress: Fraction | None = None
    results: Json | None = None
    token_cost: NonNegativeInt32 | None = None


class AgentRequestPatch(Input):
    agent_type: AgentType | None = None
    content: NonEmptyText | None = None
    status: RequestStatus | None = None
    progress: Fraction | None = None
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
    user_id: uuid.UUID | None = None
    request_chain: list[uuid.UUID] = Field(default_factory=list)
    context_state: Json | None = None


class AgentSessionPatch(Input):
    request_chain: list[uuid.UUID] | None = None
    context_state: Json | None = None


# --- usage ------------------------------------------------------------------


class UsageEvent(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    event_type: str
    tokens_used: int | None
    cost: float | None
    metadata: Any | None
    created_at: datetime.datetime


class UsageEventCreate(Input):
    user_id: uuid.UUID | None = None
    event_type: NonEmptyText
    tokens_used: NonNegativeInt32 | None = None
    cost: NonNegativeReal | None = None
    metadata: Json | None = None


class UsageTotal(BaseModel):
    event_type: str
    events: int
    tokens_used: int
    cost: float


class UsageSummary(BaseModel):
    since: datetime.datetime | None
    until: datetime.datetime | None
    totals: list[UsageTotal]


# --- system -----------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unavailable"]


class Hello(BaseModel):
    message: str
    timestamp: datetime.datetime
    role: str
    user_id: uuid.UUID | None
    visible_rows: dict[str, int]
