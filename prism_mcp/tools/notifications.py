"""Notifications: where alerts and reports go (Slack, email), a test send, history, retries, the daily report.

The capabilities only read and write settings and publish to the outbox; PRISM-NOTIFIER (``prism notifier``, or
``prism up``) does the sending. See :mod:`prism_mcp.notify.notifier` for the delivery guarantees.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from prism_mcp import security_events
from prism_mcp.capability import Call, Scope, capability
from prism_mcp.errors import ConflictError, InvalidInputError, NotFoundError
from prism_mcp.notify import ledger
from prism_mcp.notify import notifier as _notifier  # registers the notifier's background task
from prism_mcp.notify.ledger import HistoryEntry
from prism_mcp.notify.report import build_report
from prism_mcp.notify.settings import NotificationSettings, load_settings, update_settings
from prism_mcp.notify.urls import mask_webhook_url
from prism_mcp.outbox import EventKind, publish
from prism_mcp.runtime import ComponentStatus, Runtime, health_check
from prism_mcp.store.connection import CONNECTION_ERRORS

__all__ = ["NotificationHistory", "NotificationSettingsView", "RetryResult", "SettingsUpdate", "TestSend"]

Channel = Literal["slack", "email"]
HEARTBEAT_FRESH_SECONDS = 30


class NotificationSettingsView(BaseModel):
    slack_enabled: bool
    slack_webhook_url: str | None = Field(description="Masked: the secret part is shown as ****.")
    email_enabled: bool
    email_recipients: list[str]
    system_alerts: bool
    performance_alerts: bool
    security_alerts: bool
    daily_reports: bool
    repeat_interval_seconds: int = Field(description="At most one notification per alert per this many seconds.")
    min_severity: Literal["warning", "critical"]
    enabled_channels: list[str] = Field(description="Channels that are enabled and fully configured.")
    updated_at: datetime | None
    updated_by: str | None


class SettingsUpdate(BaseModel):
    changed: list[str] = Field(description="The fields whose value changed; empty when nothing did.")
    settings: NotificationSettingsView


class TestSend(BaseModel):
    event_id: str = Field(description="The outbox entry; history entries of this send carry it as event_id.")
    channels: list[str]
    results: list[HistoryEntry] = Field(description="Outcomes seen within wait_seconds, one per finished channel.")
    pending: list[str] = Field(description="Channels with no outcome yet (no notifier running, or still trying).")


class DeadLetterView(BaseModel):
    id: str
    channel: str
    kind: str
    title: str
    event_id: str
    reason: str
    tries: int
    dead_at: datetime


class NotificationHistory(BaseModel):
    entries: list[HistoryEntry] = Field(description="Newest first: delivered, failed tries and dead letters.")
    dead_letters: list[DeadLetterView] = Field(description="Undelivered notifications waiting for a retry.")
    stats: dict[str, int] = Field(description="Counters: delivered, dead_lettered, suppressed, duplicates.")


class RetryResult(BaseModel):
    queued: list[str] = Field(description="Dead letter ids queued for another delivery.")
    event_ids: list[str] = Field(description="The new outbox entries, in the same order.")
    missing: list[str] = Field(description="Ids that were not (or no longer) dead letters.")


class DailyReport(BaseModel):
    queued: bool
    event_id: str | None
    reason: str | None = Field(description="Why nothing was queued, when queued is false.")
    channels: list[str]
    report: dict[str, object] = Field(description="The report as sent: title, period and sections.")


def _view(settings: NotificationSettings) -> NotificationSettingsView:
    data = settings.model_dump(exclude={"slack_webhook_url"})
    return NotificationSettingsView(
        **data,
        slack_webhook_url=mask_webhook_url(settings.slack_webhook_url),
        enabled_channels=settings.enabled_channels(),
    )


@capability("GET /notifications/settings", scope=Scope.READ, read_only=True, resource="prism://notifications/settings")
async def notifications_settings(call: Call) -> NotificationSettingsView:
    """The notification settings: Slack and email channels, which alert categories go out, repeat interval.

    The webhook URL is masked. Change them with notifications_update_settings (PUT /notifications/settings).
    """
    return _view(await load_settings(call.runtime.store))


# Every field is optional: one left out keeps its current value (the tool's description says so once).
SlackOn = Annotated[bool | None, Field(description="Send alerts and reports to the Slack webhook.")]
EmailOn = Annotated[bool | None, Field(description="Send alerts and reports by email.")]
SystemOn = Annotated[bool | None, Field(description="Notify system alerts (CPU, memory, disk, services).")]
PerfOn = Annotated[bool | None, Field(description="Notify performance alerts (latency, error rate).")]
SecurityOn = Annotated[bool | None, Field(description="Notify security alerts.")]
ReportsOn = Annotated[bool | None, Field(description="Send the daily report.")]


@capability(
    "PUT /notifications/settings",
    scope=Scope.ADMIN,
    idempotent=True,
    secret_params=frozenset({"slack_webhook_url"}),
)
async def notifications_update_settings(
    call: Call,
    slack_enabled: SlackOn = None,
    slack_webhook_url: Annotated[
        str | None,
        Field(
            max_length=2048,
            description="https://hooks.slack.com/services/... (or a host:port in PRISM_WEBHOOK_ALLOWED_HOSTS); "
            "empty string removes it.",
        ),
    ] = None,
    email_enabled: EmailOn = None,
    email_recipients: Annotated[
        list[Annotated[str, Field(max_length=254)]] | None,
        Field(max_length=50, description="Mailbox addresses (name@domain), replacing the current list."),
    ] = None,
    system_alerts: SystemOn = None,
    performance_alerts: PerfOn = None,
    security_alerts: SecurityOn = None,
    daily_reports: ReportsOn = None,
    repeat_interval_seconds: Annotated[
        int | None, Field(ge=10, le=604800, description="At most one notification per alert per interval.")
    ] = None,
    min_severity: Annotated[
        Literal["warning", "critical"] | None, Field(description="Alerts below this severity are not sent.")
    ] = None,
) -> SettingsUpdate:
    """Change the notification settings; only the fields given change, the others keep their values.

    Enabling Slack needs a webhook URL (https://hooks.slack.com/..., or a host:port listed in
    PRISM_WEBHOOK_ALLOWED_HOSTS; private, loopback and link-local targets are refused); enabling email needs
    recipients. A bad field is refused with 422 naming it, and nothing changes. Every change is recorded as a
    security event; the webhook URL is never shown in full.
    """
    given = {
        "slack_enabled": slack_enabled,
        "slack_webhook_url": slack_webhook_url,
        "email_enabled": email_enabled,
        "email_recipients": email_recipients,
        "system_alerts": system_alerts,
        "performance_alerts": performance_alerts,
        "security_alerts": security_alerts,
        "daily_reports": daily_reports,
        "repeat_interval_seconds": repeat_interval_seconds,
        "min_severity": min_severity,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    runtime = call.runtime
    settings, changed = await update_settings(
        runtime.store,
        changes,
        allowed_hosts=runtime.settings.webhook_allowed_hosts,
        by=call.principal.name,
        now=datetime.now(UTC),
    )
    if changed:
        await security_events.record(
            runtime.store,
            "settings_changed",
            "notification settings changed: " + ", ".join(changed),
            principal=call.principal.fingerprint,
            details={"area": "notifications", "changed": changed, "surface": call.surface},
        )
    return SettingsUpdate(changed=changed, settings=_view(settings))


async def _outcomes(call: Call, event_id: str, channels: list[str], wait_seconds: float) -> list[HistoryEntry]:
    deadline = time.monotonic() + wait_seconds
    while True:
        recent = await ledger.read_history(call.runtime.store, limit=200)
        final = {e.channel: e for e in recent if e.event_id == event_id and e.status != "failed"}
        if set(channels) <= set(final) or time.monotonic() >= deadline:
            return list(final.values())
        await asyncio.sleep(0.1)


@capability("POST /notifications/test", scope=Scope.OPERATE, idempotent=False)
async def notifications_test(
    call: Call,
    channel: Annotated[
        Literal["all", "slack", "email"], Field(description="One channel, or all enabled channels.")
    ] = "all",
    message: Annotated[str | None, Field(max_length=500, description="Text to include; a default otherwise.")] = None,
    wait_seconds: Annotated[
        float, Field(ge=0, le=60, description="Wait this long for the outcome; 0 returns once queued.")
    ] = 0,
) -> TestSend:
    """Send a test notification through PRISM-NOTIFIER to one channel or every enabled one.

    The channel must be enabled (409 otherwise). With wait_seconds, the answer carries each channel's outcome
    (delivered or dead_lettered, with the reason); channels still pending are listed.
    """
    settings = await load_settings(call.runtime.store)
    enabled = settings.enabled_channels()
    channels: list[str] = enabled if channel == "all" else [channel]
    if not enabled or not set(channels) <= set(enabled):
        wanted = "any channel" if channel == "all" else channel
        raise ConflictError(f"{wanted} is not enabled; enable it with PUT /notifications/settings first")
    payload = {
        "channels": channels,
        "message": message,
        "requested_by": call.principal.name,
        "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    event_id = await publish(call.runtime.store, "test", payload)
    results = await _outcomes(call, event_id, channels, wait_seconds)
    done = {r.channel for r in results}
    return TestSend(
        event_id=event_id, channels=channels, results=results, pending=[c for c in channels if c not in done]
    )


@capability("GET /notifications/history", scope=Scope.READ, read_only=True)
async def notifications_history(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=1000, description="How many history entries, newest first.")] = 50,
    status: Annotated[
        Literal["delivered", "failed", "dead_lettered"] | None, Field(description="Only entries with this status.")
    ] = None,
) -> NotificationHistory:
    """What PRISM-NOTIFIER did: deliveries, failed tries with their reasons, dead letters waiting for a retry.

    Retry dead letters with notifications_retry (POST /notifications/retry).
    """
    store = call.runtime.store
    entries = await ledger.read_history(store, limit=limit, status=status)
    letters = await ledger.dead_letters(store)
    views = [DeadLetterView(**letter.model_dump(exclude={"payload"})) for letter in letters[-limit:]]
    return NotificationHistory(entries=entries, dead_letters=views, stats=await ledger.stats(store))


@capability("POST /notifications/retry", scope=Scope.OPERATE, idempotent=False)
async def notifications_retry(
    call: Call,
    ids: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None,
        Field(max_length=1000, description="Dead letter ids (from notifications_history)."),
    ] = None,
    all: Annotated[bool, Field(description="Retry every dead letter.")] = False,
) -> RetryResult:
    """Queue dead-lettered notifications for another delivery, by id or all of them.

    Each goes back to the outbox for its own channel only, bypassing the repeat-interval dedupe. Give ids or
    all=true (422 otherwise); 404 when none of the given ids is a dead letter.
    """
    if not ids and not all:
        raise InvalidInputError("ids", "give dead letter ids, or all=true to retry every dead letter")
    store = call.runtime.store
    taken, missing = await ledger.take_dead_letters(store, None if all else ids)
    if ids and not taken:
        raise NotFoundError(f"none of {len(ids)} id(s) is a dead letter; list them with GET /notifications/history")
    event_ids = []
    for letter in taken:
        payload = {**letter.payload, "channels": [letter.channel], "retry_of": letter.id}
        kind: EventKind = "alert" if letter.kind == "alert" else "report" if letter.kind == "report" else "test"
        event_ids.append(await publish(store, kind, payload))
    return RetryResult(queued=[letter.id for letter in taken], event_ids=event_ids, missing=missing)


@capability("POST /notifications/daily-report", scope=Scope.OPERATE, idempotent=False)
async def notifications_send_daily_report(
    call: Call,
    hours: Annotated[int, Field(ge=1, le=168, description="The period the report covers, ending now.")] = 24,
    force: Annotated[bool, Field(description="Send even when daily_reports is off in the settings.")] = False,
) -> DailyReport:
    """Build the daily report (health, alerts opened and resolved, log statistics, security summary) and send it.

    It goes to every enabled channel as a Slack message and an email with text and HTML parts. Nothing is
    queued when daily_reports is off (unless force) or no channel is enabled; reason then says so. The worker
    calls this once a day.
    """
    settings = await load_settings(call.runtime.store)
    report = await build_report(call.runtime, call.principal, hours=hours)
    channels = settings.enabled_channels()
    reason = None
    if not settings.daily_reports and not force:
        reason = "daily_reports is off in the notification settings; turn it on, or pass force=true"
    elif not channels:
        reason = "no notification channel is enabled; configure Slack or email with PUT /notifications/settings"
    if reason is not None:
        return DailyReport(queued=False, event_id=None, reason=reason, channels=channels, report=report)
    event_id = await publish(call.runtime.store, "report", {**report, "channels": channels})
    return DailyReport(queued=True, event_id=event_id, reason=None, channels=channels, report=report)


@health_check("notifier")
async def _notifier_health(runtime: Runtime) -> ComponentStatus | None:
    store = runtime.store
    try:
        settings = await load_settings(store)
        letters = await store.redis.hlen(store.key("notifications", "dead"))
        seen = await store.redis.zrangebyscore(
            _notifier.heartbeat_key(runtime), time.time() - HEARTBEAT_FRESH_SECONDS, "+inf"
        )
    except CONNECTION_ERRORS:
        # The redis component already says "Redis connection failed"; nothing can be known about notifiers.
        return None
    if not settings.enabled_channels() and not letters:
        return None
    details = {"notifiers": len(seen), "dead_letters": letters, "channels": settings.enabled_channels()}
    if not seen:
        reason = "no notifier has run in the last 30 s; start `prism notifier` (or `prism up`)"
        return ComponentStatus(name="notifier", status="degraded", reason=reason, details=details)
    if letters:
        reason = f"{letters} notification(s) dead-lettered; see GET /notifications/history, POST /notifications/retry"
        return ComponentStatus(name="notifier", status="degraded", reason=reason, details=details)
    return ComponentStatus(name="notifier", status="healthy", details=details)
