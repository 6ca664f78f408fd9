"""The one alert model and store every area uses (system, performance, security).

An alert is identified by its *fingerprint* (for example ``threshold:cpu``, ``security:brute_force:10.0.0.7``):
firing the same fingerprint again updates the alert (``last_seen``, ``count``, severity) instead of creating a
new one. Every fire and resolve is published to the outbox; the notifier decides, per fingerprint and repeat
interval, what actually reaches Slack or email. Hysteresis (not flapping at a threshold) is the job of the
rule that calls :func:`fire` and :func:`resolve`; see the threshold evaluator.

Storage: one JSON document per alert under ``alerts:doc:<id>``, a sorted set ``alerts:index`` by last change,
and a set ``alerts:firing``. Updates use WATCH/MULTI so concurrent replicas firing the same alert count once
each and never lose an update.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from redis.exceptions import WatchError

from prism_mcp.errors import NotFoundError
from prism_mcp.outbox import publish
from prism_mcp.store.connection import Store

__all__ = [
    "Alert",
    "AlertCategory",
    "AlertSeverity",
    "AlertStatus",
    "alert_id",
    "fire",
    "get_alert",
    "list_alerts",
    "resolve",
    "resolve_fingerprint",
]

AlertCategory = Literal["system", "performance", "security"]
AlertSeverity = Literal["warning", "critical"]
AlertStatus = Literal["firing", "resolved"]

# Resolved alerts older than this are dropped from the index and expire, so the store stays bounded.
RESOLVED_TTL_SECONDS = 30 * 86400
_RETRIES = 20


class Alert(BaseModel):
    id: str = Field(description="Stable id of the alert (derived from the fingerprint).")
    fingerprint: str = Field(description="What the alert is about; the same condition always has the same one.")
    category: AlertCategory
    severity: AlertSeverity
    status: AlertStatus
    title: str
    message: str
    source: str = Field(description="The rule that raised it.")
    details: dict[str, Any] = {}
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    count: int = Field(description="How many times the condition was observed while this alert existed.")
    runbook: str | None = Field(default=None, description="Runbook id that addresses it, where one exists.")


def alert_id(fingerprint: str) -> str:
    return "al-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:12]


def _doc_key(store: Store, aid: str) -> str:
    return store.key("alerts", "doc", aid)


async def get_alert(store: Store, aid: str) -> Alert | None:
    raw = await store.redis.get(_doc_key(store, aid))
    return Alert.model_validate_json(raw) if raw else None


async def fire(
    store: Store,
    *,
    fingerprint: str,
    category: AlertCategory,
    severity: AlertSeverity,
    title: str,
    message: str,
    source: str,
    details: dict[str, Any] | None = None,
    runbook: str | None = None,
) -> tuple[Alert, bool]:
    """Raise or refresh the alert for ``fingerprint``; returns it and whether it newly started firing."""
    aid = alert_id(fingerprint)
    key = _doc_key(store, aid)
    now = datetime.now(UTC)
    for _ in range(_RETRIES):
        async with store.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                previous = Alert.model_validate_json(raw) if raw else None
                started = previous is None or previous.status == "resolved"
                alert = Alert(
                    id=aid,
                    fingerprint=fingerprint,
                    category=category,
                    severity=severity,
                    status="firing",
                    title=title,
                    message=message,
                    source=source,
                    details=details or {},
                    first_seen=now if started or previous is None else previous.first_seen,
                    last_seen=now,
                    count=1 if started or previous is None else previous.count + 1,
                    runbook=runbook,
                )
                pipe.multi()
                pipe.set(key, alert.model_dump_json())
                pipe.zadd(store.key("alerts", "index"), {aid: now.timestamp()})
                pipe.sadd(store.key("alerts", "firing"), aid)
                await pipe.execute()
                break
            except WatchError:
                continue
    else:
        raise RuntimeError(f"alert {fingerprint!r} kept changing under {_RETRIES} attempts to update it")
    transition = "fired" if started else "repeat"
    await publish(store, "alert", {"transition": transition, "alert": alert.model_dump(mode="json")})
    return alert, started


async def resolve(store: Store, aid: str, *, by: str) -> Alert:
    """Mark an alert resolved (idempotent); :class:`NotFoundError` for an unknown id."""
    key = _doc_key(store, aid)
    for _ in range(_RETRIES):
        async with store.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if not raw:
                    raise NotFoundError(f"no alert with id {aid!r}; list them with GET /monitoring/alerts")
                alert = Alert.model_validate_json(raw)
                if alert.status == "resolved":
                    return alert
                now = datetime.now(UTC)
                alert = alert.model_copy(update={"status": "resolved", "resolved_at": now, "resolved_by": by})
                pipe.multi()
                pipe.set(key, alert.model_dump_json(), ex=RESOLVED_TTL_SECONDS)
                pipe.zadd(store.key("alerts", "index"), {aid: now.timestamp()})
                pipe.srem(store.key("alerts", "firing"), aid)
                await pipe.execute()
                break
            except WatchError:
                continue
    else:
        raise RuntimeError(f"alert {aid!r} kept changing under {_RETRIES} attempts to resolve it")
    await publish(store, "alert", {"transition": "resolved", "alert": alert.model_dump(mode="json")})
    return alert


async def resolve_fingerprint(store: Store, fingerprint: str, *, by: str) -> Alert | None:
    """Resolve the alert of ``fingerprint`` if it is firing; ``None`` when there is nothing to resolve."""
    aid = alert_id(fingerprint)
    if not await store.redis.sismember(store.key("alerts", "firing"), aid):
        return None
    return await resolve(store, aid, by=by)


async def list_alerts(
    store: Store,
    *,
    status: AlertStatus | None = None,
    category: AlertCategory | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts newest change first, filtered by status and category."""
    index = store.key("alerts", "index")
    cutoff = datetime.now(UTC).timestamp() - RESOLVED_TTL_SECONDS
    await store.redis.zremrangebyscore(index, "-inf", cutoff)
    if status == "firing":
        ids = list(await store.redis.smembers(store.key("alerts", "firing")))
    else:
        ids = list(await store.redis.zrevrange(index, 0, 4999))
    if not ids:
        return []
    raws = await store.redis.mget([_doc_key(store, aid) for aid in ids])
    alerts = [Alert.model_validate_json(raw) for raw in raws if raw]
    alerts = [
        a for a in alerts if (status is None or a.status == status) and (category is None or a.category == category)
    ]
    alerts.sort(key=lambda a: a.last_seen, reverse=True)
    return alerts[:limit]
