from centrid.db.migrations import SerializedMigrationManager as MigrationManager
from centrid.schema.tables.columns import Vector
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-25T09:13:17:214201"
VERSION = "1.38.0"
DESCRIPTION = "chunk embeddings"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="centrid", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="DocumentChunk",
        tablename="document_chunks",
        column_name="embedding",
        db_column_name="embedding",
        column_class_name="Vector",
        column_class=Vector,
        params={
            "dimensions": 384,
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
