"""Log records on Redis: time-bucketed storage, counters updated on write, statistics and search.

Layout, every key under the store's prefix, ``H`` being hours since the epoch (UTC)::

    logs:hours        sorted set of the hours that hold records (member and score H)
    logs:r:H          sorted set of that hour's records: member the record's JSON, score its time in ms
    logs:c:H          hash of counters: "LEVEL|service" -> records, "dropped" -> records lost before storage
    logs:e:H          sorted set of error and critical event names -> occurrences

Counters and error events are written in the same pipeline as the records, so statistics read one hash and one
sorted set per hour: their cost grows with the hours asked for, not with the records stored. Counters outlive
the records they count (archiving moves records to files, the statistics stay) and expire after 31 days.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prism_mcp.errors import InvalidInputError
from prism_mcp.store.connection import Store

__all__ = [
    "ERROR_LEVELS",
    "LEVELS",
    "SearchPage",
    "StatsWindow",
    "hour_of",
    "parse_member",
    "read_stats",
    "record_from_event",
    "search_records",
    "write_records",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
COUNTER_TTL_SECONDS = 31 * 24 * 3600
MAX_FIELD_CHARS = 2000
SEARCH_CHUNK = 500
# A search stops after reading this many stored records and hands back a cursor, so a filter that matches
# nothing in a million records answers in bounded time instead of reading them all.
SEARCH_SCAN_LIMIT = 20_000

_KNOWN = ("ts", "level", "service", "event", "message", "request_id", "capability")


def hour_of(ts_ms: int) -> int:
    return ts_ms // 3_600_000


def hours_key(store: Store) -> str:
    return store.key("logs", "hours")


def records_key(store: Store, hour: int) -> str:
    return store.key("logs", "r", hour)


def counters_key(store: Store, hour: int) -> str:
    return store.key("logs", "c", hour)


def errors_key(store: Store, hour: int) -> str:
    return store.key("logs", "e", hour)


def new_record_id() -> str:
    return secrets.token_hex(8)


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[: MAX_FIELD_CHARS - 3] + "..."
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clip(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value]
    return _clip(str(value))


def _epoch_ms(ts: Any) -> int:
    if isinstance(ts, str):
        try:
            return int(datetime.fromisoformat(ts).timestamp() * 1000)
        except ValueError:
            pass
    return int(datetime.now(UTC).timestamp() * 1000)


def record_from_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record from a captured event dict: the known keys, the rest under ``fields``."""
    rest = {k: v for k, v in event.items() if k not in _KNOWN}
    message = rest.pop("exception", "") or ""
    ts_ms = _epoch_ms(event.get("ts"))
    return {
        "id": new_record_id(),
        "ts": ts_ms,
        "level": str(event.get("level") or "INFO").upper(),
        "service": str(event.get("service") or "prism"),
        "event": str(event.get("event") or "")[:200],
        "message": _clip(str(message)),
        "request_id": event.get("request_id"),
        "capability": event.get("capability"),
        "fields": _clip(rest),
    }


def encode_member(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def parse_member(member: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(member)
    return record


def _expire_at(hour: int) -> int:
    return (hour + 1) * 3600 + COUNTER_TTL_SECONDS


async def write_records(store: Store, records: Iterable[Mapping[str, Any]], *, dropped: int = 0) -> int:
    """Store ``records`` and update the counters in one pipeline; ``dropped`` adds to the current hour's count.

    Raises the connection error when Redis cannot be reached: the caller decides whether that is a drop.
    """
    by_hour: dict[int, dict[str, int]] = {}
    counts: Counter[tuple[int, str]] = Counter()
    errors: Counter[tuple[int, str]] = Counter()
    for record in records:
        hour = hour_of(int(record["ts"]))
        by_hour.setdefault(hour, {})[encode_member(record)] = int(record["ts"])
        counts[(hour, f"{record['level']}|{record['service']}")] += 1
        if record["level"] in ERROR_LEVELS:
            errors[(hour, str(record["event"]))] += 1
    pipe = store.redis.pipeline(transaction=False)
    for hour, members in by_hour.items():
        pipe.zadd(records_key(store, hour), members)
        pipe.zadd(hours_key(store), {str(hour): hour})
    for (hour, field), n in counts.items():
        pipe.hincrby(counters_key(store, hour), field, n)
    for (hour, event), n in errors.items():
        pipe.zincrby(errors_key(store, hour), n, event)
    if dropped:
        now_hour = hour_of(int(datetime.now(UTC).timestamp() * 1000))
        pipe.hincrby(counters_key(store, now_hour), "dropped", dropped)
        by_hour.setdefault(now_hour, {})
    for hour in by_hour:
        pipe.expireat(counters_key(store, hour), _expire_at(hour))
        pipe.expireat(errors_key(store, hour), _expire_at(hour))
    await pipe.execute()
    return sum(len(m) for m in by_hour.values())


@dataclass(frozen=True, slots=True)
class StatsWindow:
    """Counters summed over a window of hours."""

    first_hour: int
    last_hour: int
    by_level: dict[str, int]
    by_service: dict[str, int]
    hourly: list[tuple[int, int, int]]
    """(hour, records, errors) for every hour of the window, oldest first."""
    top_errors: list[tuple[str, int]]
    dropped: int

    @property
    def total(self) -> int:
        return sum(self.by_level.values())

    @property
    def errors(self) -> int:
        return sum(n for level, n in self.by_level.items() if level in ERROR_LEVELS)


async def read_stats(store: Store, hours: int, *, now_ms: int | None = None, top: int = 10) -> StatsWindow:
    """Sum the counters of the last ``hours`` hours, the current one included: one hash per hour."""
    last = hour_of(now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000))
    window = list(range(last - hours + 1, last + 1))
    pipe = store.redis.pipeline(transaction=False)
    for hour in window:
        pipe.hgetall(counters_key(store, hour))
    pipe.zunion([errors_key(store, hour) for hour in window], withscores=True)
    *counters, union = await pipe.execute()

    by_level: Counter[str] = Counter()
    by_service: Counter[str] = Counter()
    hourly: list[tuple[int, int, int]] = []
    dropped = 0
    for hour, fields in zip(window, counters, strict=True):
        records = errors = 0
        for field, value in fields.items():
            if field == "dropped":
                dropped += int(value)
                continue
            level, _, service = field.partition("|")
            n = int(value)
            by_level[level] += n
            by_service[service] += n
            records += n
            errors += n if level in ERROR_LEVELS else 0
        hourly.append((hour, records, errors))
    ranked = sorted(((str(event), int(score)) for event, score in union), key=lambda item: (-item[1], item[0]))
    return StatsWindow(window[0], last, dict(by_level), dict(by_service), hourly, ranked[:top], dropped)


@dataclass(frozen=True, slots=True)
class SearchPage:
    records: list[dict[str, Any]]
    next_cursor: str | None
    scanned: int


def encode_cursor(ts_ms: int, skip: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts_ms, skip]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The position a cursor names; :class:`InvalidInputError` on ``cursor`` for anything PRISM did not issue."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts_ms, skip = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(ts_ms, int) and isinstance(skip, int) and skip >= 0:
            return ts_ms, skip
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidInputError("cursor", "not a cursor this search issued; pass next_cursor from the previous page")


@dataclass(frozen=True, slots=True)
class Filters:
    min_level: str | None = None
    service: str | None = None
    text: str | None = None

    def quick_reject(self, member: str) -> bool:
        return self.text is not None and self.text not in member.lower()

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.min_level and LEVEL_RANK.get(str(record.get("level")), 0) < LEVEL_RANK[self.min_level]:
            return False
        if self.service and record.get("service") != self.service:
            return False
        if self.text is None:
            return True
        parts = [record.get(name) or "" for name in ("event", "message", "request_id", "capability")]
        haystack = " ".join([*map(str, parts), json.dumps(record.get("fields", {}))])
        return self.text in haystack.lower()


class _Position:
    """Where a newest-first walk stands: the score last consumed and how many records with it were consumed."""

    def __init__(self, ts_ms: int, run: int) -> None:
        self.ts_ms = ts_ms
        self.run = run

    def consume(self, ts_ms: int) -> None:
        if ts_ms == self.ts_ms:
            self.run += 1
        else:
            self.ts_ms, self.run = ts_ms, 1


async def search_records(
    store: Store, filters: Filters, *, since_ms: int, until_ms: int, limit: int, cursor: str | None
) -> SearchPage:
    """Records matching ``filters`` between the two times, newest first, at most ``limit``, with a cursor."""
    upper, skip = decode_cursor(cursor) if cursor else (until_ms, 0)
    upper = min(upper, until_ms)
    position = _Position(upper, skip if cursor else 0)
    hours = await store.redis.zrevrangebyscore(hours_key(store), hour_of(upper), hour_of(since_ms))
    found: list[dict[str, Any]] = []
    scanned = 0
    for hour in hours:
        offset = skip if hour_of(upper) == int(hour) else 0
        while scanned < SEARCH_SCAN_LIMIT:
            chunk = await store.redis.zrevrangebyscore(
                records_key(store, int(hour)), upper, since_ms, start=offset, num=SEARCH_CHUNK, withscores=True
            )
            for member, score in chunk:
                scanned += 1
                position.consume(int(score))
                if not filters.quick_reject(member):
                    record = parse_member(member)
                    if filters.matches(record):
                        found.append(record)
                if len(found) == limit or scanned >= SEARCH_SCAN_LIMIT:
                    return SearchPage(found, encode_cursor(position.ts_ms, position.run), scanned)
            if len(chunk) < SEARCH_CHUNK:
                break
            offset += len(chunk)
    return SearchPage(found, None, scanned)
