"""Security: rate limits, the block list, security events and alerts, the summary and the audit report.

The doors themselves (guards on the request gate) are in :mod:`prism_mcp.security.guards`; importing this
module registers them.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from prism_mcp.alerts import Alert, AlertStatus, get_alert, list_alerts, resolve
from prism_mcp.capability import Call, Scope, capability
from prism_mcp.errors import InvalidInputError, NotFoundError
from prism_mcp.runtime import ComponentStatus, Runtime, dashboard_section, health_check
from prism_mcp.security import guards as _guards
from prism_mcp.security.addresses import Network, parse_network, to_networks
from prism_mcp.security.blocklist import Entry, block, blocklist, unblock
from prism_mcp.security.payloads import printable
from prism_mcp.security.pipeline import emit, flush, hour_buckets, pipe
from prism_mcp.security.ratelimit import limiter
from prism_mcp.security_events import SecurityEvent, read_events

__all__ = [
    "BlockedAddress",
    "BlockedAddresses",
    "IpActionResult",
    "RateLimitClient",
    "RateLimits",
    "SecurityAuditReport",
    "SecuritySummary",
]

logger = logging.getLogger(__name__)

_ = _guards  # imported for its side effect: the guards join the gate
AUDITS_KEPT = 52
SUMMARY_HOURS = 24
RECENT_CLIENTS = 200


class RateLimitClient(BaseModel):
    client: str = Field(description="`key:<fingerprint>` for a key, `ip:<address>` for failed authentication.")
    limit_name: Literal["requests", "auth_failures"]
    limit: int = Field(description="Requests allowed per window.")
    window: str = Field(description="The limit as configured, e.g. 600/minute.")
    hits: int = Field(description="Requests counted in the current moving window.")
    remaining: int
    reset_at: datetime = Field(description="When the oldest counted request leaves the window.")
    times_limited: int = Field(description="How often this client was refused with 429 (since the last reset).")


class LimitedClient(BaseModel):
    client: str
    times_limited: int


class RateLimits(BaseModel):
    request_limit: str = Field(description="PRISM_RATE_LIMIT, counted per key.")
    auth_failure_limit: str = Field(description="PRISM_AUTH_FAILURE_LIMIT, counted per client address.")
    backend: Literal["redis", "local-fallback"] = Field(
        description="redis: shared by every replica; local-fallback: Redis was unreachable, limits are per process."
    )
    clients: list[RateLimitClient] = Field(description="Clients seen in the last 24 hours, most hits first.")
    most_limited: list[LimitedClient] = Field(description="Clients refused most often, most first.")


class RateLimitsReset(BaseModel):
    cleared: list[str] = Field(description="The clients whose counts were cleared.")
    count: int


class SecurityEvents(BaseModel):
    events: list[SecurityEvent] = Field(description="Newest first.")
    count: int


class SecurityAlerts(BaseModel):
    alerts: list[Alert] = Field(description="Security alerts, newest change first.")
    count: int


class BlockedAddress(BaseModel):
    ip_address: str = Field(description="The blocked address or CIDR range.")
    reason: str
    blocked_at: datetime
    expires_at: datetime | None = Field(description="When the block lifts by itself; null for a permanent block.")
    blocked_by: str = Field(description="Principal that blocked it, or auto-block.")


class BlockedAddresses(BaseModel):
    blocked: list[BlockedAddress]
    count: int
    snapshot_age_seconds: float = Field(description="Age of this process's copy of the block list.")
    stale: bool = Field(description="True while Redis is unreachable and the last snapshot is in force.")


class IpActionResult(BaseModel):
    action: Literal["block", "unblock"]
    ip_address: str = Field(description="The address or range acted on, normalised (192.168.1.0/24).")
    changed: bool = Field(description="False when unblocking something that was not blocked.")
    entry: BlockedAddress | None = Field(description="The block now in force (block) or just lifted (unblock).")


class Offender(BaseModel):
    ip_address: str
    events: int = Field(description="Warning and critical events from this address in the window.")


class SecuritySummary(BaseModel):
    window_hours: int
    events_total: int
    events_by_type: dict[str, int]
    events_by_severity: dict[str, int]
    top_offenders: list[Offender] = Field(description="Addresses with the most warning or critical events.")
    blocked: list[BlockedAddress]
    active_alerts: list[Alert] = Field(description="Security alerts still firing.")
    rate_limiter: Literal["redis", "local-fallback"]
    generated_at: datetime


class SecurityAuditReport(BaseModel):
    id: str
    created_at: datetime
    created_by: str
    summary: SecuritySummary
    recent_events: list[SecurityEvent] = Field(description="The newest events, at most 200.")
    findings: list[str] = Field(description="What an operator should look at, in plain sentences.")


def _blocked(entry: Entry) -> BlockedAddress:
    return BlockedAddress(
        ip_address=str(entry.network),
        reason=entry.reason,
        blocked_at=datetime.fromtimestamp(entry.blocked_at, UTC),
        expires_at=datetime.fromtimestamp(entry.expires_at, UTC) if entry.expires_at else None,
        blocked_by=entry.by,
    )


def _backend(runtime: Runtime) -> Literal["redis", "local-fallback"]:
    return "local-fallback" if limiter(runtime).degraded else "redis"


@capability("GET /security/rate-limits", scope=Scope.READ, read_only=True, resource="prism://security/rate-limits")
async def security_rate_limits(call: Call) -> RateLimits:
    """The configured limits and, per client seen in 24 hours, hits, remaining and reset.

    Keys are counted against PRISM_RATE_LIMIT; failed authentication per address against PRISM_AUTH_FAILURE_LIMIT.
    `most_limited` names the clients refused with 429 most often. Clear counts with security_rate_limits_reset.
    """
    runtime, gate = call.runtime, limiter(call.runtime)
    await gate.watch_once()
    store = runtime.store
    names: list[str] = await store.redis.zrevrange(store.key("ratelimit", "clients"), 0, RECENT_CLIENTS - 1)
    limited_raw = await store.redis.zrevrange(store.key("ratelimit", "limited"), 0, RECENT_CLIENTS - 1, withscores=True)
    limited = {str(name): int(score) for name, score in limited_raw}
    clients = [await _client_stats(runtime, name, limited.get(name, 0)) for name in names]
    clients.sort(key=lambda c: c.hits, reverse=True)
    return RateLimits(
        request_limit=runtime.settings.rate_limit,
        auth_failure_limit=runtime.settings.auth_failure_limit,
        backend=_backend(runtime),
        clients=clients,
        most_limited=[LimitedClient(client=name, times_limited=count) for name, count in list(limited.items())[:10]],
    )


async def _client_stats(runtime: Runtime, client: str, times_limited: int) -> RateLimitClient:
    gate = limiter(runtime)
    is_ip = client.startswith("ip:")
    item = gate.failures if is_ip else gate.requests
    decision = await gate.stats(item, client)
    return RateLimitClient(
        client=client,
        limit_name="auth_failures" if is_ip else "requests",
        limit=decision.limit,
        window=runtime.settings.auth_failure_limit if is_ip else runtime.settings.rate_limit,
        hits=decision.limit - decision.remaining,
        remaining=decision.remaining,
        reset_at=datetime.fromtimestamp(decision.reset_at, UTC),
        times_limited=times_limited,
    )


@capability("POST /security/rate-limits/reset", scope=Scope.ADMIN, destructive=True, idempotent=True)
async def security_rate_limits_reset(
    call: Call,
    client: Annotated[
        str | None,
        Field(
            description="One client to clear (`key:…` or `ip:…`, as listed by security_rate_limits); omit for all.",
            min_length=3,
            max_length=128,
            pattern=r"^(key|ip):[0-9A-Za-z:._-]+$",
        ),
    ] = None,
) -> RateLimitsReset:
    """Clear rate-limit counts: every client's, or one client's. Refused clients can call again at once."""
    runtime, store, gate = call.runtime, call.runtime.store, limiter(call.runtime)
    await gate.watch_once()
    if client is None:
        names = list(await store.redis.zrange(store.key("ratelimit", "clients"), 0, -1))
        names += [f"ip:{ip}" for ip in gate.throttled]
    else:
        names = [client]
    cleared = sorted(set(names))
    for name in cleared:
        await gate.clear(name)
    if client is None:
        gate.throttled.clear()
        await store.redis.delete(store.key("ratelimit", "limited"))
    else:
        await store.redis.zrem(store.key("ratelimit", "limited"), client)
    emit(
        runtime,
        "settings_changed",
        f"rate limits reset for {client or 'all clients'}",
        severity="info",
        principal=call.principal.fingerprint,
        details={"capability": "security_rate_limits_reset", "client": client, "cleared": len(cleared)},
    )
    return RateLimitsReset(cleared=cleared, count=len(cleared))


@capability("GET /security/events", scope=Scope.READ, read_only=True)
async def security_events(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=1000, description="How many events to return, newest first.")] = 50,
    type: Annotated[
        str | None,
        Field(
            description="Only this type: auth_failure, scope_denied, rate_limited, blocked_request, ip_action, "
            "settings_changed, suspicious_request.",
            pattern=r"^[a-z_]{1,40}$",
        ),
    ] = None,
    since: Annotated[datetime | None, Field(description="Only events at or after this time (ISO 8601).")] = None,
) -> SecurityEvents:
    """Security events, newest first, each with its type, client address and key fingerprint."""
    await flush(call.runtime, within=0.5)
    events = await read_events(call.runtime.store, limit=limit, type=type, since=since)
    return SecurityEvents(events=events, count=len(events))


@capability("GET /security/alerts", scope=Scope.READ, read_only=True)
async def security_alerts(
    call: Call,
    resolved: Annotated[
        bool | None, Field(description="false: only firing alerts; true: only resolved ones; omit for both.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="How many alerts to return.")] = 100,
) -> SecurityAlerts:
    """Security alerts (brute force, rate-limit storms, scanning, suspicious payloads, limiter fallback).

    Resolve one with security_alerts_resolve and its id.
    """
    status: AlertStatus | None = None if resolved is None else ("resolved" if resolved else "firing")
    alerts = await list_alerts(call.runtime.store, status=status, category="security", limit=limit)
    return SecurityAlerts(alerts=alerts, count=len(alerts))


@capability("POST /security/alerts/resolve", scope=Scope.OPERATE, idempotent=True)
async def security_alerts_resolve(
    call: Call,
    alert_id: Annotated[
        str, Field(description="The alert's id, as listed by security_alerts.", pattern=r"^al-[0-9a-f]{12}$")
    ],
) -> Alert:
    """Mark one security alert resolved (resolving it again changes nothing); returns the alert."""
    found = await get_alert(call.runtime.store, alert_id)
    if found is None or found.category != "security":
        raise NotFoundError(f"no security alert with id {alert_id!r}; list them with GET /security/alerts")
    return await resolve(call.runtime.store, alert_id, by=call.principal.name)


@capability("POST /security/ips/action", scope=Scope.ADMIN, idempotent=True)
async def security_ip_action(
    call: Call,
    action: Annotated[Literal["block", "unblock"], Field(description="block or unblock.")],
    ip_address: Annotated[
        str, Field(description="An IPv4 or IPv6 address, or a CIDR range.", min_length=2, max_length=64)
    ],
    reason: Annotated[str, Field(description="Why; kept with the block and in the event.", max_length=500)] = "",
    ttl_seconds: Annotated[
        int | None, Field(ge=1, le=31_536_000, description="Lift the block by itself after this many seconds.")
    ] = None,
) -> IpActionResult:
    """Block or unblock an address or range on every PRISM port: a blocked client gets 403 before its key is read.

    Addresses in PRISM_NEVER_BLOCK (loopback by default) cannot be blocked, so nobody can lock out the operator.
    """
    runtime, network = call.runtime, parse_network(ip_address)
    reason = printable(reason, 500)
    if action == "block":
        _refuse_never_block(runtime, network)
        entry: Entry | None = await block(
            runtime, network, reason=reason, ttl_seconds=ttl_seconds, by=call.principal.name
        )
        changed = True
    else:
        entry = await unblock(runtime, network)
        changed = entry is not None
    event = "ip_blocked" if action == "block" else "ip_unblocked"
    logger.info(event, extra={"network": str(network), "by": call.principal.name, "changed": changed})
    emit(
        runtime,
        "ip_action",
        f"{action} {network}" + (f": {reason}" if reason else ""),
        severity="warning" if action == "block" else "info",
        client_ip=str(network.network_address) if network.num_addresses == 1 else None,
        principal=call.principal.fingerprint,
        details={"action": action, "ip_address": str(network), "ttl_seconds": ttl_seconds, "changed": changed},
    )
    return IpActionResult(
        action=action, ip_address=str(network), changed=changed, entry=_blocked(entry) if entry else None
    )


def _refuse_never_block(runtime: Runtime, network: Network) -> None:
    for protected in to_networks(tuple(runtime.settings.never_block)):
        if protected.version == network.version and network.overlaps(protected):
            raise InvalidInputError(
                "ip_address",
                f"{network} includes {protected}, which PRISM_NEVER_BLOCK protects; block a narrower range",
            )


@capability("GET /security/ips", scope=Scope.READ, read_only=True)
async def security_ips(call: Call) -> BlockedAddresses:
    """Blocked addresses and ranges in force, with reason, who blocked them and when each block lifts."""
    snapshot = blocklist(call.runtime)
    await snapshot.refresh(call.runtime.store)
    blocked = [_blocked(entry) for entry in snapshot.active()]
    return BlockedAddresses(
        blocked=blocked,
        count=len(blocked),
        snapshot_age_seconds=round(max(0.0, time.time() - snapshot.refreshed_at), 3),
        stale=snapshot.stale,
    )


@capability("GET /security/summary", scope=Scope.READ, read_only=True, resource="prism://security/summary")
async def security_summary(call: Call) -> SecuritySummary:
    """The last 24 hours: events by type and severity, top offending and blocked addresses, firing alerts."""
    return await build_summary(call.runtime)


async def build_summary(runtime: Runtime) -> SecuritySummary:
    await flush(runtime, within=0.5)
    store = runtime.store
    buckets = hour_buckets(time.time(), SUMMARY_HOURS)
    async with store.redis.pipeline(transaction=False) as p:
        for bucket in buckets:
            p.hgetall(store.key("security", "counts", bucket))
        counts: list[dict[str, str]] = await p.execute()
    by_type, by_severity = _sum_counts(counts)
    offenders = await _top_offenders(runtime, buckets)
    snapshot = blocklist(runtime)
    await snapshot.refresh(store)
    alerts = await list_alerts(store, status="firing", category="security")
    return SecuritySummary(
        window_hours=SUMMARY_HOURS,
        events_total=sum(by_type.values()),
        events_by_type=by_type,
        events_by_severity=by_severity,
        top_offenders=offenders,
        blocked=[_blocked(entry) for entry in snapshot.active()],
        active_alerts=alerts,
        rate_limiter=_backend(runtime),
        generated_at=datetime.now(UTC),
    )


def _sum_counts(counts: list[dict[str, str]]) -> tuple[dict[str, int], dict[str, int]]:
    by_type: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for hour in counts:
        for name, value in hour.items():
            kind, _, label = name.partition(":")
            target = by_type if kind == "type" else by_severity
            target[label] = target.get(label, 0) + int(value)
    return dict(sorted(by_type.items())), dict(sorted(by_severity.items()))


async def _top_offenders(runtime: Runtime, buckets: list[str], top: int = 10) -> list[Offender]:
    store = runtime.store
    keys = [store.key("security", "offenders", bucket) for bucket in buckets]
    merged = await store.redis.zunion(keys, withscores=True)
    ranked = sorted(((str(ip), int(score)) for ip, score in merged), key=lambda pair: (-pair[1], pair[0]))
    return [Offender(ip_address=ip, events=count) for ip, count in ranked[:top]]


@capability("POST /security/audit", scope=Scope.OPERATE, idempotent=False)
async def security_audit(call: Call) -> SecurityAuditReport:
    """Write a security audit report (the summary, the newest 200 events and findings), keep it, and return it.

    The worker runs this weekly; the last 52 reports are kept.
    """
    runtime = call.runtime
    summary = await build_summary(runtime)
    events = await read_events(runtime.store, limit=200)
    report = SecurityAuditReport(
        id="audit-" + uuid.uuid4().hex[:12],
        created_at=datetime.now(UTC),
        created_by=call.principal.name,
        summary=summary,
        recent_events=events,
        findings=_findings(summary),
    )
    key = runtime.store.key("security", "audits")
    async with runtime.store.redis.pipeline(transaction=True) as p:
        p.lpush(key, report.model_dump_json())
        p.ltrim(key, 0, AUDITS_KEPT - 1)
        await p.execute()
    logger.info("security_audit_written", extra={"report": report.id, "events": len(events)})
    return report


def _findings(summary: SecuritySummary) -> list[str]:
    found: list[str] = []
    for alert in summary.active_alerts:
        found.append(f"{alert.severity} alert still firing: {alert.title} (id {alert.id})")
    failures = summary.events_by_type.get("auth_failure", 0)
    if failures:
        found.append(f"{failures} failed authentications in {summary.window_hours} h")
    if summary.top_offenders:
        worst = summary.top_offenders[0]
        found.append(f"most active offender: {worst.ip_address} with {worst.events} events")
    if summary.rate_limiter == "local-fallback":
        found.append("the rate limiter is on its per-process fallback: Redis is unreachable for it")
    if not found:
        found.append("nothing to report: no failed authentication, no firing security alert")
    return found


_DASHBOARD_TTL = 5.0


@dashboard_section("security")
async def security_dashboard(runtime: Runtime) -> dict[str, Any]:
    """The last hour in numbers, the blocked count and firing alerts; cached for a few seconds."""
    cached = runtime.state.get("security_dashboard")
    if isinstance(cached, tuple) and time.monotonic() - cached[0] < _DASHBOARD_TTL:
        section: dict[str, Any] = cached[1]
        return section
    store = runtime.store
    hour = await store.redis.hgetall(store.key("security", "counts", hour_buckets(time.time(), 1)[0]))
    by_type, by_severity = _sum_counts([hour])
    firing = await list_alerts(store, status="firing", category="security")
    section = {
        "last_hour_by_type": by_type,
        "last_hour_by_severity": by_severity,
        "blocked": len(blocklist(runtime).active()),
        "firing_alerts": len(firing),
        "rate_limiter": _backend(runtime),
    }
    runtime.state["security_dashboard"] = (time.monotonic(), section)
    return section


@health_check("security")
async def security_health(runtime: Runtime) -> ComponentStatus | None:
    """Degraded while the rate limiter runs on its per-process fallback or the block list is a stale snapshot."""
    gate, snapshot = limiter(runtime), blocklist(runtime)
    reasons = []
    if gate.degraded:
        reasons.append("rate limiter on per-process fallback (Redis unreachable)")
    if snapshot.stale:
        reasons.append("block list served from a stale local snapshot (Redis unreachable)")
    details = {"blocked": len(snapshot.active()), "events_dropped": _dropped(runtime)}
    if reasons:
        return ComponentStatus(name="security", status="degraded", reason="; ".join(reasons), details=details)
    return ComponentStatus(name="security", status="healthy", details=details)


def _dropped(runtime: Runtime) -> int:
    return pipe(runtime).dropped
