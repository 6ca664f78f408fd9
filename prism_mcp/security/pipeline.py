"""From what the doors saw to stored events, counters and security alerts, off the request path.

Guards and observers call :func:`emit`, which only puts the event on a bounded in-process queue (observers
are synchronous and no door may wait on Redis for its record). A background task drains the queue in
batches: one Redis pipeline per batch appends the events to the stream, bumps the hourly counters the summary
reads, and counts each rule's window; a rule whose count reaches its threshold fires a ``security`` alert and,
with ``PRISM_AUTO_BLOCK``, blocks the address for ``PRISM_AUTO_BLOCK_TTL`` seconds (volume rules only: brute
force, rate-limit storms and scanning). When the queue is full
new events are dropped and counted; a flood must not grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prism_mcp.alerts import fire
from prism_mcp.runtime import Runtime, background_task
from prism_mcp.security.addresses import contains, parse_address, parse_network, to_networks
from prism_mcp.security.blocklist import block, blocklist
from prism_mcp.security_events import EVENTS_MAXLEN, EventSeverity, events_key
from prism_mcp.store.connection import CONNECTION_ERRORS, Store

__all__ = ["RULES", "Pending", "Rule", "emit", "hour_buckets", "pipe"]

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
BATCH = 500
COUNTS_TTL = 26 * 3600


@dataclass(frozen=True, slots=True)
class Pending:
    """An event waiting to be written; ``stored=False`` only counts it (a 404 is not worth a stream entry)."""

    type: str
    message: str
    severity: EventSeverity = "info"
    client_ip: str | None = None
    principal: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stored: bool = True
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    event_type: str
    threshold_setting: str
    severity: str
    title: str
    auto_block: bool = True


RULES: tuple[Rule, ...] = (
    Rule("brute_force", "auth_failure", "brute_force_threshold", "critical", "Brute force from {ip}"),
    Rule("rate_limit_storm", "rate_limited", "rate_limit_storm_threshold", "warning", "Rate-limit storm from {ip}"),
    Rule("scanning", "not_found", "scan_threshold", "warning", "Scanning from {ip}"),
    # One pattern match is evidence, not proof: it raises an alert but never blocks by itself.
    Rule("suspicious_payload", "suspicious_request", "", "warning", "Suspicious requests from {ip}", False),
)
_RULE_BY_TYPE = {rule.event_type: rule for rule in RULES}


class EventPipe:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0
        self.written = 0
        # Set while nothing is queued or being written: what a reader of fresh events waits for.
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, event: Pending) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self.idle.clear()


def pipe(runtime: Runtime) -> EventPipe:
    found = runtime.state.get("security_pipe")
    if not isinstance(found, EventPipe):
        found = EventPipe()
        runtime.state["security_pipe"] = found
    return found


def emit(
    runtime: Runtime,
    type: str,
    message: str,
    *,
    severity: EventSeverity = "info",
    client_ip: str | None = None,
    principal: str | None = None,
    details: dict[str, Any] | None = None,
    stored: bool = True,
) -> None:
    """Queue one security event; never blocks and never raises."""
    pipe(runtime).put(Pending(type, message, severity, client_ip, principal, details or {}, stored))


def hour_buckets(now: float, hours: int) -> list[str]:
    """The hourly bucket names covering the last ``hours`` hours, newest first (``2026120309``)."""
    return [datetime.fromtimestamp(now - 3600 * i, UTC).strftime("%Y%m%d%H") for i in range(hours)]


def _entry(event: Pending) -> dict[str, str]:
    return {
        "type": event.type,
        "severity": event.severity,
        "client_ip": event.client_ip or "",
        "principal": event.principal or "",
        "message": event.message[:500],
        "details": json.dumps(event.details, default=str)[:4000],
        "ts": datetime.fromtimestamp(event.at, UTC).isoformat(),
    }


async def write_batch(runtime: Runtime, batch: list[Pending]) -> None:
    """Append, count and evaluate one batch in a single round trip, then fire whatever crossed a threshold."""
    store, window = runtime.store, runtime.settings.security_rule_window
    ruled: list[tuple[Rule, Pending, int]] = []
    async with store.redis.pipeline(transaction=False) as p:
        for event in batch:
            _count(p, store, event)
            rule = _RULE_BY_TYPE.get(event.type)
            if rule is not None and event.client_ip:
                key = store.key("security", "rule", rule.name, event.client_ip, int(event.at // window))
                ruled.append((rule, event, len(p.command_stack)))
                p.incr(key)
                p.expire(key, window * 2)
        results = await p.execute()
    pipe(runtime).written += len(batch)
    for rule, event, index in ruled:
        await _evaluate(runtime, rule, event, int(results[index]))


def _count(p: Any, store: Store, event: Pending) -> None:
    if event.stored:
        p.xadd(events_key(store), _entry(event), maxlen=EVENTS_MAXLEN, approximate=True)
    hour = hour_buckets(event.at, 1)[0]
    counts = store.key("security", "counts", hour)
    p.hincrby(counts, f"type:{event.type}", 1)
    p.hincrby(counts, f"severity:{event.severity}", 1)
    p.expire(counts, COUNTS_TTL)
    if event.client_ip and event.severity != "info":
        offenders = store.key("security", "offenders", hour)
        p.zincrby(offenders, 1, event.client_ip)
        p.expire(offenders, COUNTS_TTL)
    if event.type == "rate_limited" and event.details.get("client"):
        p.zincrby(store.key("ratelimit", "limited"), 1, str(event.details["client"]))


async def _evaluate(runtime: Runtime, rule: Rule, event: Pending, count: int) -> None:
    # A rule fires once when its window's count reaches the threshold, and refreshes the alert at each
    # further multiple of it, so a sustained attack keeps its alert current without one write per event.
    threshold = int(getattr(runtime.settings, rule.threshold_setting)) if rule.threshold_setting else 1
    if count < threshold or count % threshold != 0:
        return
    await _raise_alert(runtime, rule, event, count, threshold)


async def _raise_alert(runtime: Runtime, rule: Rule, event: Pending, count: int, threshold: int) -> None:
    ip = event.client_ip or "-"
    window = runtime.settings.security_rule_window
    message = f"{count} {event.type} events from {ip} within {window} s (threshold {threshold}); last: {event.message}"
    details = {"client_ip": ip, "count": count, "threshold": threshold, "window_seconds": window, "rule": rule.name}
    _, started = await fire(
        runtime.store,
        fingerprint=f"security:{rule.name}:{ip}",
        category="security",
        severity="critical" if rule.severity == "critical" else "warning",
        title=rule.title.format(ip=ip),
        message=message,
        source=f"security.{rule.name}",
        details=details,
    )
    if started:
        logger.warning("security_alert_fired", extra={"rule": rule.name, "client_ip": ip, "count": count})
    if runtime.settings.auto_block and rule.auto_block:
        await _auto_block(runtime, rule, ip)


async def _auto_block(runtime: Runtime, rule: Rule, ip: str) -> None:
    address = parse_address(ip)
    if address is None or contains(to_networks(tuple(runtime.settings.never_block)), address):
        return
    if blocklist(runtime).match(address) is not None:
        return
    ttl = runtime.settings.auto_block_ttl
    await block(runtime, parse_network(ip), reason=f"auto-block: {rule.name}", ttl_seconds=ttl, by="auto-block")
    logger.warning("ip_auto_blocked", extra={"client_ip": ip, "rule": rule.name, "ttl_seconds": ttl})
    emit(
        runtime,
        "ip_action",
        f"blocked {ip} for {ttl} s after the {rule.name} rule fired",
        severity="warning",
        client_ip=ip,
        principal="auto-block",
        details={"action": "block", "ip_address": ip, "ttl_seconds": ttl, "rule": rule.name},
    )


async def drain_once(runtime: Runtime, pending: EventPipe) -> None:
    batch = [await pending.queue.get()]
    while len(batch) < BATCH and not pending.queue.empty():
        batch.append(pending.queue.get_nowait())
    try:
        await write_batch(runtime, batch)
    except CONNECTION_ERRORS:
        pending.dropped += len(batch)
        logger.warning("security_events_dropped", extra={"count": len(batch), "reason": "redis unreachable"})
    finally:
        if pending.queue.empty():
            pending.idle.set()


@background_task("security_events", services=("api", "mcp", "web", "worker", "notifier", "stdio"))
async def drain_events(runtime: Runtime) -> None:
    """Write queued events for the life of the process; a lost Redis drops the batch and carries on."""
    pending = pipe(runtime)
    while True:
        await drain_once(runtime, pending)


async def flush(runtime: Runtime, within: float = 5.0) -> None:
    """Wait, at most ``within`` seconds, until every queued event is written: for a reader of fresh events."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await pipe(runtime).idle.wait()
