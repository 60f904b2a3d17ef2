"""Structured, quiet logging: one JSON object per line.

By default only centrid's own lines show (start-up facts, one line per
request, errors); libraries speak at WARNING and above.
"""

from __future__ import annotations

import datetime
import logging
import sys

import orjson


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if message.startswith("{"):
            try:
                entry.update(orjson.loads(message))
            except orjson.JSONDecodeError:
                entry["message"] = message
        else:
            entry["message"] = message
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "WARNING") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our own lines (start-up, one per request, errors) at INFO unless asked for less.
    logging.getLogger("centrid").setLevel(min(logging.INFO, logging.getLevelName(level)))
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
