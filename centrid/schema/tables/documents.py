"""`documents` and their retrieval `document_chunks`.

A chunk belongs to whoever owns its document. The chunk's `user_id` is a
copy the database keeps (InheritedOwner: set by a trigger from the
document, tied to it by a composite foreign key ON UPDATE CASCADE), never a
client's to write, so ownership can never disagree between the two. It
exists for retrieval: one index reaches a user's chunks and the planner
knows how many they own (centrid.queries.search), and the policies compare
a column instead of joining documents for every row.
"""

from typing import Literal

from piccolo.columns import UUID, ForeignKey, Integer, Text
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from centrid.schema.security import (
    ANON,
    AUTHENTICATED,
    ColumnStorage,
    Extension,
    GeneratedTsvector,
    Grant,
    Index,
    InheritedOwner,
    TableSecurity,
    TableStorage,
    owned_by_caller,
    service_grants,
)
from centrid.schema.tables.columns import Vector, created_at, one_of, owner, updated_at

# The allowed values, stated once: the CHECK below and the API's models use them.
ProcessingStatus = Literal["pending", "processing", "completed", "failed"]

# gte-small, Supabase's default embedding model; another dimension is a migration.
EMBEDDING_DIMENSIONS = 384

# pgvector: 0.8 brings iterative index scans, which complete top-k under RLS
# relies on (centrid.queries.search).
PGVECTOR = Extension(
    name="vector",
    min_version="0.8.0",
    hint=(
        "install pgvector 0.8 or newer on the PostgreSQL server (https://github.com/pgvector/pgvector; "
        "packaged as postgresql-<major>-pgvector, included in Supabase and the embedded default), "
        "or ALTER EXTENSION vector UPDATE where an older version is installed"
    ),
)


class Document(Table, tablename="documents"):
    id = UUID(primary_key=True)
    # Indexed by the composite indexes below, which lead with user_id.
    user_id = owner(index=False)
    filename = Text(null=False, default=None)
    file_type = Text(null=False, default=None)
    file_size = Integer(null=False, default=None)
    processing_status = Text(default="pending", null=False, index=True)
    content_text = Text(null=True, default=None)
    storage_path = Text(null=True, default=None)
    created_at = created_at()
    updated_at = updated_at()

    documents_processing_status_check = one_of("processing_status", ProcessingStatus)
    documents_file_size_check = Check("file_size > 0")
    # The target of the chunks' (document_id, user_id) foreign key.
    documents_id_user_id_key = Unique(["id", "user_id"])


DOCUMENT_SECURITY = TableSecurity(
    table=Document,
    owned_by=owned_by_caller(),
    writable=("INSERT", "UPDATE", "DELETE"),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT", "DELETE")),
        Grant(
            AUTHENTICATED,
            ("INSERT",),
            columns=("user_id", "filename", "file_type", "file_size", "processing_status", "content_text", "storage_path"),
        ),
        Grant(
            AUTHENTICATED,
            ("UPDATE",),
            columns=("filename", "file_type", "file_size", "processing_status", "content_text", "storage_path"),
        ),
        *service_grants(),
    ),
    owner_default="user_id",
    tsvector=GeneratedTsvector(column="search_vector", source="content_text"),
    indexes=(
        # "My newest documents", keyset-paginated on (created_at, id).
        Index("documents_user_created_idx", "(user_id, created_at DESC, id DESC)"),
        # "My documents with status X", newest first.
        Index("documents_user_status_created_idx", "(user_id, processing_status, created_at DESC, id DESC)"),
        Index("documents_search_vector_idx", "(search_vector)", method="gin"),
    ),
)


class DocumentChunk(Table, tablename="document_chunks"):
    id = UUID(primary_key=True)
    # Indexed by the (document_id, chunk_index) unique constraint.
    document_id = ForeignKey(references=Document, on_delete=OnDelete.cascade, null=False, default=None)
    chunk_index = Integer(null=False, default=None)
    content = Text(null=False, default=None)
    section_title = Text(null=True, default=None)
    # Computed outside this layer (ingestion, agents, clients); compared by
    # cosine distance. Null until a client stores one.
    embedding = Vector(dimensions=EMBEDDING_DIMENSIONS, null=True)
    created_at = created_at()

    document_chunks_document_id_chunk_index_key = Unique(
        ["document_id", "chunk_index"])
    document_chunks_chunk_index_check = Check("chunk_index >= 0")
    document_chunks_content_check = Check("content <> ''")


CHUNK_SECURITY = TableSecurity(
    table=DocumentChunk,
    # The same rule as the document's, through the copied owner.
    owned_by=owned_by_caller(),
    writable=("INSERT", "UPDATE", "DELETE"),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT", "DELETE")),
        Grant(
            AUTHENTICATED, ("INSERT",), columns=("document_id", "chunk_index", "content", "section_title", "embedding")
        ),
        Grant(AUTHENTICATED, ("UPDATE",), columns=("chunk_index", "content", "section_title", "embedding")),
        *service_grants(),
    ),
    touch_updated_at=False,
    tsvector=GeneratedTsvector(column="search_vector", source="content"),
    inherited_owner=InheritedOwner(column="user_id", via="document_id", parent="documents"),
    indexes=(
        Index("document_chunks_search_vector_idx", "(search_vector)", method="gin"),
        # One graph over every user's vectors; RLS filters what it hands
        # over, and centrid.queries.search makes sure that never leaves a
        # caller short.
        Index("document_chunks_embedding_idx", "(embedding vector_cosine_ops)", method="hnsw"),
        # A user's chunks (optionally some documents'): keyword search reads
        # the caller's chunks through it (under RLS the GIN index cannot
        # serve a caller: `@@` is not LEAKPROOF; it serves service_role).
        Index("document_chunks_user_document_idx", "(user_id, document_id)"),
        # A user's vectors: counted from the index alone, and fed to the
        # exact ranking when they are few.
        Index("document_chunks_user_embedded_idx", "(user_id, document_id) WHERE embedding IS NOT NULL"),
    ),
    # The vector and the tsvector in the row, the text out of it: a
    # caller's search reads the first two of every chunk they own and the
    # text of ten. With the types' defaults a chunk of a few hundred
    # characters sends its vector to TOAST (TableStorage).
    storage=TableStorage(
        columns=(ColumnStorage("embedding", "main"), ColumnStorage("search_vector", "main")),
        toast_tuple_target=4080,
    ),
    extensions=(PGVECTOR,),
)
