"""Structured, quiet logging: one JSON object per line.

By default only centrid's own lines show (start-up facts, one line per
request, errors); libraries speak at WARNING and above.
"""

from __future__ import annotations

import datetime
import logging
import sys

import orjson


class JsonEvent:
    """A log message that already is a JSON object's fields (the access
    line, once per request): the formatter merges the fields as they are
    instead of parsing the text it would otherwise receive, so the line is
    serialised once. Anything else that reads the record (caplog, another
    handler) gets the JSON text from getMessage(), as before."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return orjson.dumps(self.fields).decode()


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, JsonEvent) and not record.args:
            entry.update(record.msg.fields)
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            return orjson.dumps(entry).decode()
        message = record.getMessage()
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
