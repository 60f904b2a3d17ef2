"""Prometheus metrics on CENTRID_METRICS_PORT (unset: off).

What is recorded, and where:

- requests by route template (never the raw path: ids would make every
  request its own series), method and status, and their latency, recorded
  by the access-log middleware (centrid.request.access_log) at the end of each
  request - no middleware layer of its own;
- database errors by kind: the exception class of a database error the API
  mapped, or `unavailable` for any other 503 (connection lost, pool
  exhausted, database down);
- pool connections in use / idle / waiting, read from the asyncpg pool when
  scraped.

The metrics live in a registry of their own and are served by
prometheus_client's HTTP server (a thread) on HOST:CENTRID_METRICS_PORT,
outside the API's port so it is never exposed with it.

Per process: each process counts its own requests. Under `uvicorn
--workers N` only the first worker to bind the port serves /metrics, and
its figures are that worker's; the others log a warning. Run one worker per
instance (scale with instances) when complete figures matter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("centrid.server")

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "centrid_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "centrid_http_request_duration_seconds",
    "Time from the request's arrival to its last response byte, by route template and method.",
    ("route", "method"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "centrid_database_errors",
    "Requests that ended on a database error, by kind (the error's class, or 'unavailable').",
    ("kind",),
    registry=REGISTRY,
)

_state: dict[str, Any] = {"enabled": False, "pool": None, "server": None}
_lock = threading.Lock()


class _PoolCollector(Collector):
    """The request pool as it is when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = _state["pool"]
        size = idle = waiting = 0
        if pool is not None:
            size = pool.get_size()
            idle = pool.get_idle_size()
            # asyncpg keeps acquirers waiting for a free connection on its
            # queue's getters; there is no public count of them.
            waiting = len(getattr(getattr(pool, "_queue", None), "_getters", ()) or ())
        yield GaugeMetricFamily("centrid_pool_connections_in_use", "Pool connections held by requests.",
                                value=size - idle)
        yield GaugeMetricFamily("centrid_pool_connections_idle", "Open pool connections not in use.", value=idle)
        yield GaugeMetricFamily("centrid_pool_acquire_waiting", "Requests waiting for a pool connection.",
                                value=waiting)


REGISTRY.register(_PoolCollector())


def enabled() -> bool:
    return bool(_state["enabled"])


def start(host: str, port: int, pool: Any) -> None:
    """Serve /metrics (idempotent within a process: one server per port)."""
    with _lock:
        _state["pool"] = pool
        _state["enabled"] = True
        if _state["server"] is not None:
            return
        try:
            _state["server"] = start_http_server(port, addr=host, registry=REGISTRY)
        except OSError as exc:
            log.warning(f"metrics: cannot listen on {host}:{port} ({exc}); this process's metrics are not served")
            return
        log.info(f"metrics on http://{host}:{port}/metrics")


def stop() -> None:
    with _lock:
        _state["enabled"] = False
        _state["pool"] = None
        server = _state["server"]
        _state["server"] = None
    if server is not None:
        httpd, thread = server
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def record(route: str, method: str, status: int, seconds: float, database_error: str | None) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
    if database_error is not None:
        DATABASE_ERRORS.labels(database_error).inc()
    elif status == 503:
        DATABASE_ERRORS.labels("unavailable").inc()
