"""PRISM-NOTIFIER: delivers outbox events (alerts, reports, tests) to Slack and email, at least once.

Each channel has its own consumer group on the outbox stream (``notifier-slack``, ``notifier-email``) and its own
loop, so a slow or dead channel never holds up the other: each acknowledges its entries independently. An entry
is acknowledged only after it was delivered or dead-lettered on that channel, so a notifier killed mid-send loses
nothing: its pending entries are claimed (``XAUTOCLAIM``) by any live notifier once they have been idle longer
than a send can take. The price of at-least-once is the occasional duplicate; each possible one is counted.

Per entry and channel: route (channel enabled, category wanted, severity at or above the minimum), dedupe (one
notification per alert fingerprint per repeat interval, and one when it resolves), send with retries (backoff on
5xx and connection errors, ``Retry-After`` on 429), and after the last try a dead letter that
``POST /notifications/retry`` can send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.exceptions import ResponseError

from prism_mcp.notify import ledger
from prism_mcp.notify.channels import Channel, DeliveryError, EmailChannel, SlackChannel
from prism_mcp.notify.messages import Notice, notice_for
from prism_mcp.notify.settings import SEVERITY_RANK, NotificationSettings, load_settings
from prism_mcp.outbox import outbox_key
from prism_mcp.runtime import Runtime, background_task
from prism_mcp.store.connection import CONNECTION_ERRORS

__all__ = ["GROUP_PREFIX", "Notifier", "run_notifier"]

logger = logging.getLogger(__name__)

GROUP_PREFIX = "notifier-"
# One entry at a time: an entry read in a batch would sit pending, its idle time growing, while the ones before
# it are retried, and a live notifier could then claim it from this one.
BATCH = 1
HEARTBEAT_KEEP_SECONDS = 86400
# Consumers that left nothing pending and have been idle this long are removed from their group.
CONSUMER_FORGET_MS = 86400 * 1000
# An alert event older than this when first read (a notifier started after a long outage, or for the first
# time on an old stream) is acknowledged without a send: a day-old "CPU high" helps no one.
STALE_ALERT_SECONDS = 86400


@background_task("notifier", services=("notifier",))
async def run_notifier(runtime: Runtime) -> None:
    await Notifier(runtime).run()


def heartbeat_key(runtime: Runtime) -> str:
    return runtime.store.key("notifications", "notifiers")


class Notifier:
    """One notifier process's consumers, one per channel."""

    def __init__(self, runtime: Runtime, consumer: str | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.config = runtime.settings
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        # A live notifier's entry must never look abandoned: the idle bound exceeds the longest single try.
        self.attempt_seconds = 2 * self.config.notify_timeout_seconds
        self.claim_idle = max(self.config.notify_claim_idle_seconds, self.attempt_seconds + 1)

    async def run(self) -> None:
        timeout = httpx.Timeout(self.config.notify_timeout_seconds)
        # trust_env=False: no proxy from the environment may reroute a webhook POST.
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            channels: list[Channel] = [SlackChannel(self.config, client), EmailChannel(self.config)]
            logger.info("notifier_started", extra={"consumer": self.consumer})
            await asyncio.gather(*(self._supervise(channel) for channel in channels))

    async def _supervise(self, channel: Channel) -> None:
        # The boundary that must not die: Redis going away or an unexpected error pauses this channel's loop
        # and starts it again; unacknowledged entries are still pending and are picked up again.
        while True:
            try:
                await self._loop(channel)
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS:
                logger.warning("notifier_redis_unavailable", extra={"channel": channel.name})
            except Exception:
                logger.exception("notifier_loop_crashed", extra={"channel": channel.name})
            await asyncio.sleep(1.0)

    def _group(self, channel: Channel) -> str:
        return GROUP_PREFIX + channel.name

    async def _ensure_group(self, group: str) -> None:
        # From "0": events published before the first notifier ever ran are still delivered.
        try:
            await self.store.redis.xgroup_create(outbox_key(self.store), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _forget_departed(self, group: str) -> None:
        key = outbox_key(self.store)
        for consumer in await self.store.redis.xinfo_consumers(key, group):
            if consumer["pending"] == 0 and consumer["idle"] > CONSUMER_FORGET_MS:
                await self.store.redis.xgroup_delconsumer(key, group, consumer["name"])

    async def _loop(self, channel: Channel) -> None:
        group = self._group(channel)
        await self._ensure_group(group)
        await self._forget_departed(group)
        next_claim = 0.0
        while True:
            await self._heartbeat()
            entries: list[tuple[str, dict[str, str]]] = []
            if time.monotonic() >= next_claim:
                entries = await self._claim(group)
                next_claim = time.monotonic() + min(self.claim_idle / 2, 5.0)
            if not entries:
                entries = await self._read(group)
            for entry_id, fields in entries:
                await self.handle(channel, entry_id, fields)

    async def _heartbeat(self) -> None:
        now = time.time()
        key = heartbeat_key(self.runtime)
        await self.store.redis.zadd(key, {self.consumer: now})
        await self.store.redis.zremrangebyscore(key, "-inf", now - HEARTBEAT_KEEP_SECONDS)

    async def _read(self, group: str) -> list[tuple[str, dict[str, str]]]:
        block_ms = int(min(1.0, self.store.timeout / 2) * 1000)
        try:
            answer = await self.store.redis.xreadgroup(
                group, self.consumer, {outbox_key(self.store): ">"}, count=BATCH, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._ensure_group(group)
            return []
        return [entry for _, entries in answer for entry in entries] if answer else []

    async def _claim(self, group: str) -> list[tuple[str, dict[str, str]]]:
        """Pending entries of notifiers that died (idle past the bound), now this consumer's."""
        key = outbox_key(self.store)
        _, claimed, deleted = await self.store.redis.xautoclaim(
            key, group, self.consumer, min_idle_time=int(self.claim_idle * 1000), start_id="0-0", count=BATCH
        )
        if deleted:
            await self.store.redis.xack(key, group, *deleted)
        if claimed:
            logger.info("notifier_claimed", extra={"group": group, "entries": len(claimed)})
        return [(entry_id, fields) for entry_id, fields in claimed if fields]

    async def _ack(self, channel: Channel, entry_id: str) -> None:
        await self.store.redis.xack(outbox_key(self.store), self._group(channel), entry_id)

    async def handle(self, channel: Channel, entry_id: str, fields: dict[str, str]) -> None:
        """Route, dedupe, deliver and acknowledge one outbox entry on one channel."""
        kind = fields.get("kind", "")
        try:
            payload = ledger.payload_of(fields)
        except json.JSONDecodeError:
            await self._unreadable(channel, entry_id, kind)
            return
        if await ledger.is_done(self.store, channel.name, entry_id):
            await self._ack(channel, entry_id)
            return
        settings = await load_settings(self.store)
        if not self._routed(channel, kind, payload, fields, settings) or not await self._first_in_interval(
            channel, entry_id, kind, payload, settings
        ):
            await self._ack(channel, entry_id)
            return
        notice = notice_for(kind, payload)
        await self._deliver(channel, entry_id, kind, payload, notice, settings)
        await self._ack(channel, entry_id)

    async def _unreadable(self, channel: Channel, entry_id: str, kind: str) -> None:
        await ledger.record_history(
            self.store,
            status="failed",
            channel=channel.name,
            kind=kind or "unknown",
            title="unreadable outbox entry",
            event_id=entry_id,
            attempt=1,
            reason="the payload is not JSON; the entry was acknowledged without a send",
        )
        await self._ack(channel, entry_id)

    def _routed(
        self,
        channel: Channel,
        kind: str,
        payload: dict[str, Any],
        fields: dict[str, str],
        settings: NotificationSettings,
    ) -> bool:
        if not settings.channel_enabled(channel.name):
            return False
        wanted = payload.get("channels")
        if isinstance(wanted, list) and channel.name not in wanted:
            return False
        if kind != "alert" or payload.get("retry_of"):
            return kind in ("alert", "report", "test")
        alert = payload.get("alert") or {}
        if not settings.wants_category(str(alert.get("category", ""))):
            return False
        if SEVERITY_RANK.get(str(alert.get("severity")), 0) < SEVERITY_RANK[settings.min_severity]:
            return False
        return not _stale(fields.get("ts"))

    async def _first_in_interval(
        self, channel: Channel, entry_id: str, kind: str, payload: dict[str, Any], settings: NotificationSettings
    ) -> bool:
        if kind != "alert" or payload.get("retry_of"):
            return True
        fingerprint = str((payload.get("alert") or {}).get("fingerprint", ""))
        if payload.get("transition") == "resolved":
            # The next fire after a resolve starts a new interval, so it is announced at once.
            await ledger.release_dedupe(self.store, channel.name, fingerprint)
            return True
        ttl = settings.repeat_interval_seconds
        if await ledger.claim_dedupe(self.store, channel.name, fingerprint, entry_id, ttl):
            return True
        await ledger.count(self.store, "suppressed")
        return False

    async def _deliver(
        self,
        channel: Channel,
        entry_id: str,
        kind: str,
        payload: dict[str, Any],
        notice: Notice,
        settings: NotificationSettings,
    ) -> None:
        history = {"channel": channel.name, "kind": kind, "title": notice.title, "event_id": entry_id}
        if await ledger.mark_sending(self.store, channel.name, entry_id):
            logger.info("notification_resent", extra={"channel": channel.name, "event_id": entry_id})
        tries = self.config.notify_max_tries
        error = DeliveryError("no try was made")
        for attempt in range(1, tries + 1):
            error_or_none = await self._try_once(channel, notice, settings)
            if error_or_none is None:
                await ledger.record_history(self.store, status="delivered", attempt=attempt, **history)
                await ledger.mark_done(self.store, channel.name, entry_id, "delivered")
                await ledger.count(self.store, "delivered")
                logger.info("notification_delivered", extra={**history, "attempt": attempt})
                return
            error = error_or_none
            if error.permanent or attempt == tries:
                break
            wait = self._wait_before_retry(error, attempt)
            reason = f"{error.reason}; try {attempt + 1} of {tries} in {wait:.1f} s"
            await ledger.record_history(self.store, status="failed", attempt=attempt, reason=reason, **history)
            await self._hold(channel, entry_id, wait)
        await self._dead_letter(channel, entry_id, kind, payload, notice, error, attempt)

    async def _try_once(self, channel: Channel, notice: Notice, settings: NotificationSettings) -> DeliveryError | None:
        try:
            await asyncio.wait_for(channel.send(notice, settings), self.attempt_seconds)
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"no answer within {self.attempt_seconds:g} s")
        except Exception as exc:
            # A channel bug must cost one try, not the notifier: the entry goes on to a retry or a dead letter.
            logger.exception("channel_crashed", extra={"channel": channel.name})
            return DeliveryError(f"internal error in the {channel.name} channel ({type(exc).__name__})")
        return None

    def _wait_before_retry(self, error: DeliveryError, attempt: int) -> float:
        cfg = self.config
        if error.retry_after is not None:
            return min(error.retry_after, cfg.notify_retry_after_max_seconds)
        backoff = min(cfg.notify_backoff_max_seconds, cfg.notify_backoff_seconds * 2.0 ** (attempt - 1))
        return float(backoff * (1 + random.uniform(0, 0.1)))  # noqa: S311 - jitter, not a secret

    async def _hold(self, channel: Channel, entry_id: str, seconds: float) -> None:
        # Waiting between tries keeps the entry pending; re-claiming it resets its idle time so that no live
        # notifier mistakes this one for dead.
        deadline = time.monotonic() + seconds
        step = max(0.05, self.claim_idle / 3)
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(step, left))
            await self.store.redis.xclaim(
                outbox_key(self.store), self._group(channel), self.consumer, 0, [entry_id], justid=True
            )

    async def _dead_letter(
        self,
        channel: Channel,
        entry_id: str,
        kind: str,
        payload: dict[str, Any],
        notice: Notice,
        error: DeliveryError,
        tries: int,
    ) -> None:
        letter_id = await ledger.add_dead_letter(
            self.store,
            channel=channel.name,
            kind=kind,
            title=notice.title,
            event_id=entry_id,
            reason=error.reason,
            tries=tries,
            payload=payload,
        )
        await ledger.record_history(
            self.store,
            status="dead_lettered",
            channel=channel.name,
            kind=kind,
            title=notice.title,
            event_id=entry_id,
            attempt=tries,
            reason=error.reason,
            dead_letter_id=letter_id,
        )
        await ledger.mark_done(self.store, channel.name, entry_id, "dead_lettered")
        await ledger.count(self.store, "dead_lettered")
        logger.warning(
            "notification_dead_lettered", extra={"channel": channel.name, "event_id": entry_id, "tries": tries}
        )


def _stale(ts: str | None) -> bool:
    if not ts:
        return False
    with contextlib.suppress(ValueError):
        age = (datetime.now(UTC) - datetime.fromisoformat(ts)).total_seconds()
        return age > STALE_ALERT_SECONDS
    return False
