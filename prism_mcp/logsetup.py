"""Logging for PRISM's processes: one structlog pipeline, configured once, in the entry point.

Every event, from PRISM's own ``logging.getLogger(__name__)`` calls, from structlog loggers and from libraries
(uvicorn, the MCP SDK), becomes one JSON object per line on the stream::

    {"ts": "…", "level": "ERROR", "service": "api", "event": "capability_crashed", "request_id": "…",
     "capability": "logs_stats", "logger": "prism_mcp.capability", …fields}

The service is the one of the code that emitted the event: the surface of the call being served (a REST call is
``api`` even inside ``prism up``), else the port of the request, else the process's own service. Fields whose
names look secret (``api_key``, ``password``, ``authorization``…) are masked before anything is written.

Capture into Redis is a second handler on the root logger, a :class:`CaptureSink` (:func:`add_sink`): it runs
the same processors and only appends the event dict to a bounded in-memory buffer, counting what it could not
take; Redis I/O happens later, in the log writer's task (:mod:`prism_mcp.logcapture`).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "CaptureSink",
    "add_sink",
    "configure_logging",
    "current_service",
    "remove_sink",
    "service_context",
    "service_for_surface",
]

# The service of the code running now, for processes that run several (`prism up`). Set by the log area's
# request guard from the port a request arrived on; a capability call's surface takes precedence.
current_service: ContextVar[str | None] = ContextVar("prism_log_service", default=None)

_SURFACE_SERVICE = {"rest": "api", "mcp": "mcp", "cli": "cli", "worker": "worker", "web": "web"}
_SECRET_NAME = re.compile(r"(api_?key|token|secret|password|passwd|authorization|cookie|webhook)", re.IGNORECASE)
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "httpx", "httpx2")
MASK = "***"

_process_service = "prism"


def service_for_surface(surface: str) -> str | None:
    """The service a capability call's surface belongs to (``rest`` is ``api``); ``None`` for internal calls."""
    return _SURFACE_SERVICE.get(surface)


@contextmanager
def service_context(service: str) -> Iterator[None]:
    """Attribute every event logged inside the block to ``service`` (for a worker or notifier loop)."""
    token = current_service.set(service)
    try:
        yield
    finally:
        current_service.reset(token)


class CaptureSink(logging.Handler):
    """A logging handler that keeps records in a bounded buffer for one log writer.

    ``emit`` does the least it can on the logging thread: it notes the call and service the record belongs to
    (context that is gone by the time the writer runs) and appends the record to a deque, or counts it as
    dropped when the buffer is full. The writer later turns records into event dicts with :meth:`take`, running
    the same processors stdout uses. Nothing here touches Redis.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.buffer: deque[logging.LogRecord | dict[str, Any]] = deque()
        self.dropped = 0
        self.accepted = 0
        self._count_lock = threading.Lock()
        self._rendered: list[dict[str, Any]] = []
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=_shared_chain(),
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, self._keep_event],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.buffer) >= self.capacity:
            self.count_dropped(1)
            return
        _pin_context(record)
        self.buffer.append(record)
        self.accepted += 1

    def offer(self, event: dict[str, Any]) -> None:
        """Buffer an already-built event dict (for producers outside ``logging``)."""
        if len(self.buffer) >= self.capacity:
            self.count_dropped(1)
            return
        self.buffer.append(event)
        self.accepted += 1

    def count_dropped(self, n: int) -> None:
        with self._count_lock:
            self.dropped += n

    def _keep_event(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        self._rendered.append(dict(event_dict))
        return ""

    def take(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` buffered events as event dicts, oldest first; one that cannot be rendered is a drop."""
        self._rendered = []
        while self.buffer and len(self._rendered) < limit:
            item = self.buffer.popleft()
            if isinstance(item, dict):
                self._rendered.append(item)
                continue
            try:
                self.format(item)
            except Exception:  # a record that cannot be rendered must not stop the ones after it
                self.count_dropped(1)
        return self._rendered


def _pin_context(record: logging.LogRecord) -> None:
    """Copy onto the record what only the logging moment knows: its call, its service, its message."""
    if record.args and isinstance(record.msg, str):
        record.msg, record.args = record.getMessage(), None
    if isinstance(record.msg, dict):
        return
    extra = record.__dict__
    if "service" not in extra:
        extra["service"] = _service_now()
    from prism_mcp.capability import current_call

    call = current_call.get()
    if call is not None:
        extra.setdefault("request_id", call.request_id)
        extra.setdefault("capability", call.capability.name)


def _service_now() -> str:
    from prism_mcp.capability import current_call

    call = current_call.get()
    found = service_for_surface(call.surface) if call is not None else None
    return found or current_service.get() or _process_service


def add_sink(sink: CaptureSink) -> None:
    """Start capturing every event that reaches the root logger into ``sink``."""
    logging.getLogger().addHandler(sink)


def remove_sink(sink: CaptureSink) -> None:
    logging.getLogger().removeHandler(sink)


def _upper_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    level = event_dict.get("level") or method_name
    event_dict["level"] = "WARNING" if level in ("warn", "WARN") else str(level).upper()
    return event_dict


def _timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # The record's own creation time: a captured record is rendered later, by the writer.
    if "ts" not in event_dict:
        record = event_dict.get("_record")
        created = record.created if record is not None else time.time()
        event_dict["ts"] = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    return event_dict


def _add_call_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    from prism_mcp.capability import current_call

    call = current_call.get()
    if call is not None:
        event_dict.setdefault("request_id", call.request_id)
        event_dict.setdefault("capability", call.capability.name)
    if "service" not in event_dict:
        event_dict["service"] = _service_now()
    return event_dict


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    return event_dict


@functools.lru_cache(maxsize=4096)
def _is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def mask_secrets(fields: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of every field whose name looks like a secret, at any depth of nested dicts."""
    for name, value in fields.items():
        if _is_secret_name(name) and value not in (None, ""):
            fields[name] = MASK
        elif isinstance(value, dict):
            fields[name] = mask_secrets(dict(value))
    return fields


def _mask(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    mask_secrets(event_dict)
    return event_dict


_LEADING = ("ts", "level", "service", "event", "request_id", "capability", "logger")


def _order_keys(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # The fields a reader scans for come first on every line, whatever order they were added in.
    ordered = {key: event_dict.pop(key) for key in _LEADING if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_chain() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(),
        _add_logger_name,
        _upper_level,
        _timestamp,
        _add_call_context,
        structlog.processors.format_exc_info,
        _mask,
    ]


def _formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _order_keys,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's events, as JSON lines, to ``stream`` (stdout by default), attributed to ``service``.

    Call once per process, in the entry point. Library loggers lose their own handlers and propagate to the
    one root handler, so uvicorn and the MCP SDK print through the same pipeline.
    """
    global _process_service
    _process_service = service
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    logging.getLogger("httpx").setLevel("WARNING")
    logging.getLogger("httpx2").setLevel("WARNING")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_chain(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
