"""Logging for PRISM's processes, configured once, in the entry point.

One JSON object per line with the level name (``"level": "ERROR"``), the service and the event. Library
loggers (uvicorn, the MCP SDK) go through the same handler. ``prism mcp --stdio`` logs to stderr so that
stdout carries nothing but JSON-RPC.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["configure_logging"]

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "event": record.getMessage(),
        }
        event.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records, as JSON lines, to ``stream`` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "httpx", "httpx2"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("httpx").setLevel("WARNING")
    logging.getLogger("httpx2").setLevel("WARNING")
