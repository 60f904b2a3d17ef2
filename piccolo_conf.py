"""Piccolo's entry point: the engine and the apps, for the CLI and the server."""

from piccolo.conf.apps import AppRegistry

from centrid.db.engine import make_engine

# In a `piccolo migrations forwards|backwards` process the engine serializes
# the whole run with an advisory lock (see centrid.db.engine.CentridEngine).
DB = make_engine()

APP_REGISTRY = AppRegistry(
    apps=[
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
        "centrid.piccolo_app",
    ]
)
