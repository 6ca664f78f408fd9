"""The outbox: a Redis Stream of events for PRISM-NOTIFIER (alerts fired or resolved, reports to send).

Producers append with :func:`publish`; the notifier reads the stream through a consumer group and acknowledges
an entry only after it has been delivered, so nothing published is lost when a notifier dies mid-send.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from prism_mcp.store.connection import Store

__all__ = ["OUTBOX_MAXLEN", "EventKind", "outbox_key", "publish"]

EventKind = Literal["alert", "report", "test"]

# Bounded so a notifier that is down for days cannot fill Redis; at one alert a second this still holds more
# than a day of events.
OUTBOX_MAXLEN = 100_000


def outbox_key(store: Store) -> str:
    return store.key("outbox")


async def publish(store: Store, kind: EventKind, payload: dict[str, Any]) -> str:
    """Append one event; returns its stream id."""
    entry = {"kind": kind, "payload": json.dumps(payload, default=str), "ts": datetime.now(UTC).isoformat()}
    entry_id: str = await store.redis.xadd(outbox_key(store), entry, maxlen=OUTBOX_MAXLEN, approximate=True)
    return entry_id
