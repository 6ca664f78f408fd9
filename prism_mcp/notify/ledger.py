"""What the notifier remembers in Redis: history, dead letters, dedupe slots and per-delivery markers.

* ``notifications:history`` — a capped stream, one entry per delivery, failed try or dead letter, with a reason.
* ``notifications:dead`` — a hash of dead letters by id: the event and channel that could not be delivered.
* ``notifications:dedupe:<channel>:<fingerprint>`` — which outbox entry owns the alert's current repeat interval;
  ``SET NX EX`` so a hundred fires in one interval give one notification.
* ``notifications:done:<channel>:<entry>`` and ``…:sending:…`` — whether an outbox entry was already handled
  on a channel, and whether a send was ever started for it: a redelivered entry that was sent before counts as
  a duplicate (``notifications:stats`` field ``duplicates``).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from prism_mcp.store.connection import Store

__all__ = [
    "DeadLetter",
    "HistoryEntry",
    "add_dead_letter",
    "claim_dedupe",
    "dead_letters",
    "read_history",
    "record_history",
]

HistoryStatus = Literal["delivered", "failed", "dead_lettered"]
HISTORY_MAXLEN = 10_000
MARKER_TTL_SECONDS = 7 * 86400
MAX_DEAD_LETTERS = 10_000


class HistoryEntry(BaseModel):
    id: str = Field(description="History id; later entries have larger ids.")
    status: HistoryStatus
    channel: str
    kind: str = Field(description="alert, report or test.")
    title: str
    event_id: str = Field(description="The outbox entry the notification came from.")
    attempt: int = Field(description="Which try this was, from 1.")
    reason: str | None = Field(default=None, description="Why it failed; never contains a secret.")
    dead_letter_id: str | None = None
    timestamp: datetime


class DeadLetter(BaseModel):
    id: str
    channel: str
    kind: str
    title: str
    event_id: str
    reason: str
    tries: int
    payload: dict[str, Any] = Field(description="The event to deliver again on retry.")
    dead_at: datetime


def _key(store: Store, *parts: str) -> str:
    return store.key("notifications", *parts)


async def record_history(
    store: Store,
    *,
    status: HistoryStatus,
    channel: str,
    kind: str,
    title: str,
    event_id: str,
    attempt: int,
    reason: str | None = None,
    dead_letter_id: str | None = None,
) -> None:
    entry = {
        "status": status,
        "channel": channel,
        "kind": kind,
        "title": title[:300],
        "event_id": event_id,
        "attempt": str(attempt),
        "reason": (reason or "")[:500],
        "dead_letter_id": dead_letter_id or "",
        "ts": datetime.now(UTC).isoformat(),
    }
    await store.redis.xadd(_key(store, "history"), entry, maxlen=HISTORY_MAXLEN, approximate=True)


async def read_history(store: Store, *, limit: int, status: str | None = None) -> list[HistoryEntry]:
    """Newest first, at most ``limit``; ``status`` filters."""
    page = await store.redis.xrevrange(_key(store, "history"), count=limit if status is None else HISTORY_MAXLEN)
    out = []
    for entry_id, fields in page:
        if status is not None and fields.get("status") != status:
            continue
        out.append(
            HistoryEntry(
                id=entry_id,
                status=fields["status"],
                channel=fields["channel"],
                kind=fields["kind"],
                title=fields.get("title", ""),
                event_id=fields.get("event_id", ""),
                attempt=int(fields.get("attempt") or 1),
                reason=fields.get("reason") or None,
                dead_letter_id=fields.get("dead_letter_id") or None,
                timestamp=datetime.fromisoformat(fields["ts"]),
            )
        )
        if len(out) >= limit:
            break
    return out


async def add_dead_letter(
    store: Store,
    *,
    channel: str,
    kind: str,
    title: str,
    event_id: str,
    reason: str,
    tries: int,
    payload: dict[str, Any],
) -> str:
    letter = DeadLetter(
        id="dl-" + secrets.token_hex(6),
        channel=channel,
        kind=kind,
        title=title[:300],
        event_id=event_id,
        reason=reason[:500],
        tries=tries,
        payload=payload,
        dead_at=datetime.now(UTC),
    )
    key = _key(store, "dead")
    if await store.redis.hlen(key) >= MAX_DEAD_LETTERS:
        oldest = sorted(await store.redis.hkeys(key))[:100]
        await store.redis.hdel(key, *oldest)
    await store.redis.hset(key, letter.id, letter.model_dump_json())
    return letter.id


async def dead_letters(store: Store) -> list[DeadLetter]:
    raw = await store.redis.hgetall(_key(store, "dead"))
    letters = [DeadLetter.model_validate_json(value) for value in raw.values()]
    return sorted(letters, key=lambda letter: letter.dead_at)


async def take_dead_letters(store: Store, ids: list[str] | None) -> tuple[list[DeadLetter], list[str]]:
    """Remove and return the dead letters named (all when ``ids`` is ``None``), and the ids not found."""
    key = _key(store, "dead")
    wanted = ids if ids is not None else list(await store.redis.hkeys(key))
    taken, missing = [], []
    for letter_id in wanted:
        raw = await store.redis.hget(key, letter_id)
        # HDEL's count decides who owns a letter when two retries race: only one of them gets it.
        if raw and await store.redis.hdel(key, letter_id):
            taken.append(DeadLetter.model_validate_json(raw))
        else:
            missing.append(letter_id)
    return taken, missing


async def claim_dedupe(store: Store, channel: str, fingerprint: str, event_id: str, ttl: int) -> bool:
    """Whether ``event_id`` owns the notification of ``fingerprint`` on ``channel`` for this interval.

    The slot holds the owning entry's id, so a redelivered entry (its notifier died before acknowledging) still
    owns it and is sent again rather than lost.
    """
    key = _key(store, "dedupe", channel, fingerprint)
    if await store.redis.set(key, event_id, nx=True, ex=ttl):
        return True
    owner: str | None = await store.redis.get(key)
    return owner == event_id


async def release_dedupe(store: Store, channel: str, fingerprint: str) -> None:
    await store.redis.delete(_key(store, "dedupe", channel, fingerprint))


async def is_done(store: Store, channel: str, event_id: str) -> bool:
    return bool(await store.redis.exists(_key(store, "done", channel, event_id)))


async def mark_done(store: Store, channel: str, event_id: str, outcome: str) -> None:
    await store.redis.set(_key(store, "done", channel, event_id), outcome, ex=MARKER_TTL_SECONDS)


async def mark_sending(store: Store, channel: str, event_id: str) -> bool:
    """Note that a send starts; ``True`` when one had already started before (the send is a duplicate)."""
    fresh = await store.redis.set(_key(store, "sending", channel, event_id), "1", nx=True, ex=MARKER_TTL_SECONDS)
    if fresh:
        return False
    await store.redis.hincrby(_key(store, "stats"), "duplicates", 1)
    return True


async def count(store: Store, field: str) -> None:
    await store.redis.hincrby(_key(store, "stats"), field, 1)


async def stats(store: Store) -> dict[str, int]:
    raw = await store.redis.hgetall(_key(store, "stats"))
    return {name: int(value) for name, value in raw.items()}


def payload_of(fields: dict[str, str]) -> dict[str, Any]:
    loaded = json.loads(fields.get("payload") or "{}")
    return loaded if isinstance(loaded, dict) else {}
