"""The daily report: health, alerts of the last day, log statistics and the security summary.

Each section comes from the capability that owns it, called through the one invocation path, so the report says
what the API says. A capability that is absent (its area not installed) or fails leaves its section marked
``skipped`` with the reason; the report is still sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prism_mcp.alerts import Alert, list_alerts
from prism_mcp.capability import Principal, invoke, registry
from prism_mcp.errors import PrismError
from prism_mcp.runtime import Runtime

__all__ = ["build_report", "summarise"]

MAX_LINES = 15


async def _call(runtime: Runtime, principal: Principal, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    cap = registry.get(name)
    if cap is None:
        raise LookupError(f"{name} is not installed in this PRISM")
    result = await invoke(runtime, cap, principal, arguments, surface="internal")
    return result.model_dump(mode="json")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def summarise(data: Mapping[str, Any]) -> list[str]:
    """Readable ``name: value`` lines from a capability's answer, one level deep, at most 15."""
    lines = []
    for name, value in data.items():
        label = name.replace("_", " ")
        if _scalar(value):
            lines.append(f"{label}: {value}")
        elif isinstance(value, Mapping) and len(value) <= 8 and all(_scalar(v) for v in value.values()):
            lines.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        elif isinstance(value, Mapping):
            lines.append(f"{label}: {len(value)} entries")
        elif isinstance(value, list):
            lines.append(f"{label}: {len(value)} items")
    return lines[:MAX_LINES]


def _health_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"overall status: {data.get('overall_status')}"]
    lines += [f"reason: {reason}" for reason in data.get("reasons", [])[:8]]
    components = data.get("components") or {}
    if components:
        lines.append("components: " + ", ".join(f"{k} {v}" for k, v in components.items()))
    return lines


def _alert_lines(alerts: list[Alert], since: datetime) -> list[str]:
    opened = [a for a in alerts if a.first_seen >= since]
    resolved = [a for a in alerts if a.resolved_at is not None and a.resolved_at >= since]
    firing = [a for a in alerts if a.status == "firing"]
    lines = [f"opened: {len(opened)}", f"resolved: {len(resolved)}", f"firing now: {len(firing)}"]
    lines += [f"firing: [{a.severity}] {a.title} ({a.category}, seen {a.count}x)" for a in firing[:10]]
    return lines


async def _section(title: str, build: Any) -> dict[str, Any]:
    try:
        lines = await build()
    except (LookupError, PrismError) as exc:
        reason = exc.message if isinstance(exc, PrismError) else str(exc)
        return {"title": title, "lines": [], "skipped": reason}
    return {"title": title, "lines": lines, "skipped": None}


async def build_report(runtime: Runtime, principal: Principal, *, hours: int = 24) -> dict[str, Any]:
    """The report payload the notifier formats: a title, the period and four sections."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)

    async def health() -> list[str]:
        return _health_lines(await _call(runtime, principal, "monitoring_health", {}))

    async def alerts() -> list[str]:
        return _alert_lines(await list_alerts(runtime.store, limit=5000), since)

    async def logs() -> list[str]:
        return summarise(await _call(runtime, principal, "logs_stats", {"hours": hours}))

    async def security() -> list[str]:
        return summarise(await _call(runtime, principal, "security_summary", {}))

    sections = [
        await _section("Health", health),
        await _section(f"Alerts (last {hours} h)", alerts),
        await _section(f"Logs (last {hours} h)", logs),
        await _section("Security", security),
    ]
    return {
        "title": f"PRISM daily report {now:%Y-%m-%d}",
        "period_hours": hours,
        "generated_at": now.isoformat(timespec="seconds"),
        "sections": sections,
    }
