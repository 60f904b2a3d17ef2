"""The ASGI app (`uvicorn server:app`); `python server.py` runs it with HOST/PORT."""

from __future__ import annotations

import uvicorn

from centrid.api.app import create_app
from centrid.config import settings
from centrid.logs import configure_logging

configure_logging(settings().log_level)
app = create_app()


def main() -> None:
    cfg = settings()
    uvicorn.run(
        # Several workers (CENTRID_WORKERS) need the app as an import string: each imports it.
        "server:app" if cfg.workers > 1 else app,
        workers=cfg.workers,
        host=cfg.host,
        port=cfg.port,
        log_config=None,
        access_log=False,
        # Let in-flight requests finish (and commit) before the pool closes.
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
