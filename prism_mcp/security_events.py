"""Security events: a capped Redis Stream of what PRISM saw at its doors.

Types in use: ``auth_failure``, ``scope_denied``, ``rate_limited``, ``blocked_request``, ``ip_action``,
``settings_changed``, ``suspicious_request``. Producers call :func:`record`; it never raises for a lost Redis
(an event that cannot be written is logged and dropped, so a door check never fails because of its record).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from prism_mcp.store.connection import CONNECTION_ERRORS, Store

__all__ = [
    "EVENTS_MAXLEN",
    "EventSeverity",
    "SecurityEvent",
    "current_client",
    "events_key",
    "read_events",
    "record",
]

logger = logging.getLogger(__name__)

EventSeverity = Literal["info", "warning", "critical"]

# The client address of the request being served, set by the security guard at the door, so that an event
# recorded deeper down (a scope denial, a settings change) names who made the request.
current_client: ContextVar[str | None] = ContextVar("prism_client_ip", default=None)
EVENTS_MAXLEN = 50_000


class SecurityEvent(BaseModel):
    id: str = Field(description="Stream id; later events have larger ids.")
    type: str
    severity: EventSeverity
    client_ip: str | None = None
    principal: str | None = Field(default=None, description="Key fingerprint or principal name, never the key.")
    message: str
    details: dict[str, Any] = {}
    timestamp: datetime


def events_key(store: Store) -> str:
    return store.key("security", "events")


async def record(
    store: Store,
    type: str,
    message: str,
    *,
    severity: EventSeverity = "info",
    client_ip: str | None = None,
    principal: str | None = None,
    details: dict[str, Any] | None = None,
) -> str | None:
    """Append one event; returns its id, or ``None`` when Redis could not be reached."""
    entry = {
        "type": type,
        "severity": severity,
        "client_ip": client_ip or current_client.get() or "",
        "principal": principal or "",
        "message": message[:500],
        "details": json.dumps(details or {}, default=str)[:4000],
        "ts": datetime.now(UTC).isoformat(),
    }
    try:
        entry_id: str = await store.redis.xadd(events_key(store), entry, maxlen=EVENTS_MAXLEN, approximate=True)
    except CONNECTION_ERRORS:
        logger.warning("security_event_dropped", extra={"type": type})
        return None
    return entry_id


def _parse(entry_id: str, fields: dict[str, str]) -> SecurityEvent:
    return SecurityEvent(
        id=entry_id,
        type=fields.get("type", "unknown"),
        severity=fields.get("severity", "info"),
        client_ip=fields.get("client_ip") or None,
        principal=fields.get("principal") or None,
        message=fields.get("message", ""),
        details=json.loads(fields.get("details") or "{}"),
        timestamp=datetime.fromisoformat(fields["ts"]),
    )


def _stream_id(since: datetime) -> str:
    # A time without a zone is UTC; stream ids cannot be negative, so anything before 1970 reads from the start.
    moment = since if since.tzinfo else since.replace(tzinfo=UTC)
    return f"{max(0, int(moment.timestamp() * 1000))}-0"


async def read_events(
    store: Store, *, limit: int = 50, type: str | None = None, since: datetime | None = None
) -> list[SecurityEvent]:
    """Newest first; ``type`` and ``since`` filter. Reads at most ``limit`` matches, scanning in pages."""
    out: list[SecurityEvent] = []
    low = _stream_id(since) if since else "-"
    high = "+"
    while len(out) < limit:
        page = await store.redis.xrevrange(events_key(store), max=high, min=low, count=max(100, limit))
        if not page:
            break
        for entry_id, fields in page:
            event = _parse(entry_id, fields)
            if type is None or event.type == type:
                out.append(event)
                if len(out) >= limit:
                    break
        last = page[-1][0]
        high = f"({last}"
        if len(page) < max(100, limit):
            break
    return out
