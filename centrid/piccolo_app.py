"""The `centrid` Piccolo app: its tables, migrations and CLI commands."""

import os

from piccolo.conf.apps import AppConfig, Command

from centrid.commands.check import check
from centrid.commands.new_migration import new_migration
from centrid.commands.owner_indexes import owner_indexes_command
from centrid.commands.users import create_user, token

from centrid.schema.tables import TABLE_CLASSES

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="centrid",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    # Derived from the registry (centrid.schema.tables.SECURITY), never listed here.
    table_classes=list(TABLE_CLASSES),
    # Admin login tables first, so our security migration can lock them down.
    migration_dependencies=[
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ],
    commands=[
        Command(create_user),
        Command(token),
        Command(check),
        Command(new_migration),
        Command(owner_indexes_command, command_name="owner_indexes"),
    ],
)
