from centrid.db.migrations import SerializedMigrationManager as MigrationManager
from piccolo.constraints import Unique

ID = "2026-12-07T08:39:36:136837"
VERSION = "1.38.0"
DESCRIPTION = "chunks carry their document's owner"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="centrid", description=DESCRIPTION
    )

    manager.add_constraint(
        table_class_name="Document",
        tablename="documents",
        constraint_name="documents_id_user_id_key",
        constraint_class=Unique,
        params={"columns": ["id", "user_id"], "nulls_distinct": True},
        schema=None,
    )

    return manager
