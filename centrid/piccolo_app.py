"""The `centrid` Piccolo app: its tables, migrations and CLI commands."""

import os

from piccolo.conf.apps import AppConfig

from centrid.tables import TABLE_CLASSES

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="centrid",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=list(TABLE_CLASSES),
    # Admin login tables first, so our security migration can lock them down.
    migration_dependencies=[
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ],
    commands=[],
)
