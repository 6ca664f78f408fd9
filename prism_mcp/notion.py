"""The Notion ops journal: alerts and daily reports as pages of one Notion database.

An alert becomes one page, keyed by its fingerprint: created the first time a sync sees it, updated when its
status or severity changes (it resolves), never duplicated. Which page belongs to which fingerprint is kept in
Redis (``notion:pages``) and, should that map be lost, found again by querying the database's ``Fingerprint``
property; a daily report is a page whose fingerprint is ``report:daily:<date>``.

The database needs these properties: ``Name`` (title), ``Fingerprint`` (text), ``Kind``, ``Status``,
``Severity``, ``Category`` (select), ``First seen``, ``Resolved at`` (date), ``Count`` (number), ``Runbook`` (text).

Requests are paced to ``NOTION_REQUESTS_PER_SECOND`` (Notion allows about three a second), a 429 waits for its
``Retry-After`` (the official client does this), and one sync runs at a time across every PRISM process (a Redis
lock). A failure stops the sync, keeps what was written, and is reported as ``Notion API error: <reason>``; the
next sync retries what is left.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from notion_client import AsyncClient
from notion_client.client import RetryOptions
from notion_client.errors import HTTPResponseError, NotionClientErrorBase, RequestTimeoutError
from pydantic import BaseModel, Field

from prism_mcp.alerts import Alert, list_alerts
from prism_mcp.config import Settings
from prism_mcp.errors import ConflictError, NotionApiError
from prism_mcp.store.connection import Store

__all__ = [
    "NotionSyncResult",
    "RequestPacer",
    "is_configured",
    "notion_client",
    "notion_reason",
    "sync_journal",
]

logger = logging.getLogger(__name__)

LOCK_MS = 120_000
# A sync stops writing after this long, well inside the lock, so that a second worker never starts while the
# first still writes; what is left goes in the next sync.
SYNC_BUDGET_SECONDS = 90.0
MAX_ALERTS = 500
_DATA_SOURCE_TTL = 3600
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class NotionSyncResult(BaseModel):
    created: int = Field(description="Pages created by this sync.")
    updated: int = Field(description="Pages updated (an alert resolved or changed severity).")
    unchanged: int = Field(description="Alerts whose page was already up to date.")
    remaining: int = Field(description="Alerts left for the next sync (this one ran out of time).")
    daily_report_page: str | None = Field(description="Page id of yesterday's daily report, when one was written.")
    synced_at: datetime


class RequestPacer:
    """Spaces requests at least ``1 / rate`` seconds apart within this process."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def is_configured(settings: Settings) -> bool:
    return settings.notion_api_key is not None and settings.notion_database_id is not None


def notion_client(settings: Settings, pacer: RequestPacer, *, timeout: float, retries: int = 3) -> AsyncClient:
    """The official client against ``NOTION_BASE_URL``, every HTTP request (retries included) paced."""
    if settings.notion_api_key is None:
        raise ConflictError("Notion is not configured: set NOTION_API_KEY (and NOTION_DATABASE_ID to sync)")

    async def pace(request: httpx.Request) -> None:
        await pacer.wait()

    http = httpx.AsyncClient(event_hooks={"request": [pace]})
    return AsyncClient(
        auth=settings.notion_api_key.get_secret_value(),
        base_url=settings.notion_base_url.rstrip("/"),
        timeout_ms=int(timeout * 1000),
        client=http,
        logger=logging.getLogger("prism_mcp.notion.client"),
        log_level=logging.WARNING,
        retry=RetryOptions(max_retries=retries, initial_retry_delay_ms=500, max_retry_delay_ms=30_000)
        if retries
        else False,
    )


def notion_reason(exc: BaseException, base_url: str) -> str:
    """One line saying why a Notion call failed, and what to check; never the key."""
    if isinstance(exc, RequestTimeoutError):
        return "the request timed out; check NOTION_BASE_URL and the network"
    if isinstance(exc, HTTPResponseError):
        hint = " check NOTION_API_KEY" if exc.status in (401, 403) else ""
        code = getattr(exc.code, "value", exc.code)
        return f"{exc.status} {code}: {str(exc)[:200]};{hint}".rstrip(";")
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach {base_url} ({type(exc).__name__}); check NOTION_BASE_URL and the network"
    return f"{type(exc).__name__}"


NOTION_ERRORS: tuple[type[BaseException], ...] = (NotionClientErrorBase, httpx.HTTPError)


@asynccontextmanager
async def _sync_lock(store: Store) -> AsyncIterator[None]:
    key, token = store.key("notion", "sync", "lock"), secrets.token_hex(8)
    if not await store.redis.set(key, token, nx=True, px=LOCK_MS):
        raise ConflictError("a Notion sync is already running in another PRISM process; call again in a minute")
    try:
        yield
    finally:
        await store.redis.eval(_RELEASE, 1, key, token)


class _Journal:
    """One sync's view of the database: the data source to write into and the fingerprint → page map."""

    def __init__(self, client: AsyncClient, store: Store, database_id: str) -> None:
        self.client = client
        self.store = store
        self.database_id = database_id
        self.pages_key = store.key("notion", "pages")
        self.synced_key = store.key("notion", "synced")
        self.data_source = ""

    async def open(self) -> None:
        # API version 2025-09-03: pages live in a database's data source; querying needs the data source id.
        cache_key = self.store.key("notion", "data_source", self.database_id)
        cached = await self.store.redis.get(cache_key)
        if cached:
            self.data_source = cached
            return
        database = await self.client.databases.retrieve(database_id=self.database_id)
        sources = database.get("data_sources") or []
        if not sources:
            raise NotionApiError(f"Notion API error: database {self.database_id} has no data source to write into")
        self.data_source = str(sources[0]["id"])
        await self.store.redis.set(cache_key, self.data_source, ex=_DATA_SOURCE_TTL)

    async def page_for(self, fingerprint: str) -> str | None:
        known = await self.store.redis.hget(self.pages_key, fingerprint)
        if known:
            return str(known)
        found = await self.client.data_sources.query(
            data_source_id=self.data_source,
            filter={"property": "Fingerprint", "rich_text": {"equals": fingerprint}},
            page_size=1,
        )
        results = found.get("results") or []
        return str(results[0]["id"]) if results else None

    async def upsert(self, fingerprint: str, signature: str, properties: dict[str, Any], body: list[str]) -> str:
        """``created``, ``updated`` or ``unchanged``; the page is found (map, then query) before one is created."""
        if await self.store.redis.hget(self.synced_key, fingerprint) == signature:
            return "unchanged"
        page_id = await self.page_for(fingerprint)
        if page_id is None:
            page = await self.client.pages.create(
                parent={"type": "data_source_id", "data_source_id": self.data_source},
                properties=properties,
                children=[_paragraph(line) for line in body],
            )
            page_id, outcome = str(page["id"]), "created"
        else:
            await self.client.pages.update(page_id=page_id, properties=properties)
            outcome = "updated"
        await self.store.redis.hset(self.pages_key, fingerprint, page_id)
        await self.store.redis.hset(self.synced_key, fingerprint, signature)
        return outcome


def _text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": value[:2000]}}]


def _paragraph(line: str) -> dict[str, Any]:
    return {"object": "block", "type": "paragraph", "paragraph": {"rich_text": _text(line)}}


def _date(value: datetime | None) -> dict[str, Any]:
    return {"date": {"start": value.isoformat()} if value else None}


def alert_properties(alert: Alert) -> dict[str, Any]:
    return {
        "Name": {"title": _text(alert.title)},
        "Fingerprint": {"rich_text": _text(alert.fingerprint)},
        "Kind": {"select": {"name": "alert"}},
        "Status": {"select": {"name": alert.status}},
        "Severity": {"select": {"name": alert.severity}},
        "Category": {"select": {"name": alert.category}},
        "First seen": _date(alert.first_seen),
        "Resolved at": _date(alert.resolved_at),
        "Count": {"number": alert.count},
        "Runbook": {"rich_text": _text(alert.runbook or "")},
    }


def _alert_body(alert: Alert) -> list[str]:
    lines = [alert.message, f"Source: {alert.source}"]
    if alert.runbook:
        lines.append(f"Runbook: prism://runbooks/{alert.runbook}")
    return lines


def _report(day: date, alerts: list[Alert]) -> tuple[dict[str, Any], list[str]]:
    fired = [a for a in alerts if a.first_seen.date() == day]
    resolved = [a for a in alerts if a.resolved_at is not None and a.resolved_at.date() == day]
    critical = sum(1 for a in fired if a.severity == "critical")
    still = sum(1 for a in fired if a.status == "firing")
    properties = {
        "Name": {"title": _text(f"PRISM daily report {day.isoformat()}")},
        "Fingerprint": {"rich_text": _text(f"report:daily:{day.isoformat()}")},
        "Kind": {"select": {"name": "daily report"}},
        "First seen": {"date": {"start": day.isoformat()}},
        "Count": {"number": len(fired)},
    }
    body = [
        f"Alerts fired: {len(fired)} ({critical} critical), resolved: {len(resolved)}, still firing: {still}.",
        *(f"{a.severity}: {a.title} ({a.fingerprint}, {a.status})" for a in fired[:50]),
    ]
    return properties, body


async def sync_journal(
    settings: Settings, store: Store, pacer: RequestPacer, *, daily_report: bool
) -> NotionSyncResult:
    """Bring the journal up to date with the alerts (and yesterday's report); see the module docstring.

    Raises :class:`ConflictError` when Notion is not configured or another sync holds the lock, and
    :class:`NotionApiError` (``Notion API error: <reason>``) when Notion refuses or cannot be reached.
    """
    if not is_configured(settings) or settings.notion_database_id is None:
        raise ConflictError("Notion is not configured: set NOTION_API_KEY and NOTION_DATABASE_ID")
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    report_page: str | None = None
    async with _sync_lock(store):
        client = notion_client(settings, pacer, timeout=settings.notion_timeout)
        try:
            journal = _Journal(client, store, settings.notion_database_id)
            await journal.open()
            alerts = await list_alerts(store, limit=MAX_ALERTS)
            remaining = await _write_alerts(journal, alerts, counts)
            if daily_report and not remaining:
                report_page = await _write_report(journal, alerts)
        except NOTION_ERRORS as exc:
            reason = notion_reason(exc, settings.notion_base_url)
            await _record(store, error=reason)
            logger.warning("notion_sync_failed", extra={"reason": reason, **_log_counts(counts)})
            raise NotionApiError(f"Notion API error: {reason}") from exc
        finally:
            await client.aclose()
    result = NotionSyncResult(**counts, remaining=remaining, daily_report_page=report_page, synced_at=datetime.now(UTC))
    await _record(store, error=None, result=result)
    logger.info("notion_synced", extra=_log_counts(counts))
    return result


async def _write_alerts(journal: _Journal, alerts: list[Alert], counts: dict[str, int]) -> int:
    """Upsert the alerts' pages oldest first, counting outcomes; returns how many were left for lack of time."""
    deadline = time.monotonic() + SYNC_BUDGET_SECONDS
    for done, alert in enumerate(reversed(alerts)):
        if time.monotonic() > deadline:
            return len(alerts) - done
        signature = f"{alert.status}:{alert.severity}"
        counts[await journal.upsert(alert.fingerprint, signature, alert_properties(alert), _alert_body(alert))] += 1
    return 0


def _log_counts(counts: dict[str, int]) -> dict[str, int]:
    # "created" is a LogRecord attribute: the counts get a prefix so that logging accepts them.
    return {f"pages_{name}": value for name, value in counts.items()}


async def _write_report(journal: _Journal, alerts: list[Alert]) -> str | None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    fingerprint = f"report:daily:{day.isoformat()}"
    properties, body = _report(day, alerts)
    # A finished day's report never changes: written once, then left alone.
    outcome = await journal.upsert(fingerprint, "final", properties, body)
    if outcome == "unchanged":
        return None
    page: str | None = await journal.store.redis.hget(journal.pages_key, fingerprint)
    return page


async def _record(store: Store, *, error: str | None, result: NotionSyncResult | None = None) -> None:
    fields = {"last_attempt_at": datetime.now(UTC).isoformat(), "last_error": error or ""}
    if result is not None:
        fields |= {"last_sync_at": result.synced_at.isoformat(), "last_result": result.model_dump_json()}
    await store.redis.hset(store.key("notion", "status"), mapping=fields)


async def journal_status(store: Store) -> tuple[dict[str, str], int]:
    """The last sync's record and how many pages the journal tracks."""
    record: dict[str, str] = await store.redis.hgetall(store.key("notion", "status"))
    tracked: int = await store.redis.hlen(store.key("notion", "pages"))
    return record, tracked
