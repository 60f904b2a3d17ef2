"""The ASGI app (`uvicorn server:app`); `python server.py` runs it with HOST/PORT.

`python server.py` stops the same way on SIGTERM (docker stop, systemd) and
SIGINT (Ctrl-C): uvicorn stops accepting, lets in-flight requests finish
(up to GRACEFUL_SHUTDOWN_S) and runs the app's shutdown (pool closed, the
embedded PostgreSQL left, and stopped if this was its last user); then the
process exits 0. Left alone, uvicorn re-raises the signal once it is done,
so the process dies of it before its exit hooks run; main() installs
handlers that only note the signal, so uvicorn's re-raise lands there.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess
from starlette.applications import Starlette

from centrid.api.app import create_app
from centrid.config import settings
from centrid.db.embedded import EmbeddedError
from centrid.logs import configure_logging

configure_logging(settings().log_level)
log = logging.getLogger("centrid.server")


def _create_app() -> Starlette:
    try:
        return create_app()
    except EmbeddedError as exc:
        # E.g. a data directory of another PostgreSQL major version: a
        # message for the operator, not a traceback.
        log.error(str(exc))
        raise SystemExit(2) from None


app = _create_app()

# Let in-flight requests finish (and commit) before the pool closes.
GRACEFUL_SHUTDOWN_S = 30
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            for server in self.servers:
                for sock in server.sockets:
                    log.info(f"listening on {_url(sock.getsockname())}")


def _url(address: tuple[str, int] | tuple[str, int, int, int] | str) -> str:
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def _stop_signals_noted(noted: list[int]) -> Iterator[None]:
    """While uvicorn runs it handles these itself; afterwards it re-raises
    each one it caught, and these handlers take it as the end of a graceful stop."""

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    cfg = settings()
    config = uvicorn.Config(
        # Several workers (CENTRID_WORKERS) need the app as an import string: each imports it.
        "server:app" if cfg.workers > 1 else app,
        workers=cfg.workers,
        host=cfg.host,
        port=cfg.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    noted: list[int] = []
    with _stop_signals_noted(noted):
        if cfg.workers > 1:
            # uvicorn's supervisor: one listening socket, N worker processes.
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            _Server(config).run()
    if noted:
        log.info(f"stopped on {signal.Signals(noted[0]).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
