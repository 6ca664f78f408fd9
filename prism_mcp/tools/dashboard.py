"""The monitoring dashboard: health, metrics, request figures, alerts and every area's section in one answer."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from prism_mcp import alerts, cache
from prism_mcp.alerts import Alert
from prism_mcp.capability import Call, Scope, capability
from prism_mcp.errors import PrismError
from prism_mcp.runtime import Runtime, dashboard_sections
from prism_mcp.store.connection import CONNECTION_ERRORS
from prism_mcp.tools.health import OverallHealth, monitoring_health
from prism_mcp.tools.monitoring import SystemMetrics, monitoring_metrics
from prism_mcp.tools.performance import RequestSummary, request_summary

__all__ = ["AlertSummary", "Dashboard"]

logger = logging.getLogger(__name__)

CACHE_NAME = "dashboard"
SECTION_TIMEOUT = 3.0
_SHOWN_ALERTS = 20
T = TypeVar("T")


class AlertSummary(BaseModel):
    firing: int
    by_severity: dict[str, int]
    alerts: list[Alert] = Field(description="The newest firing alerts (at most 20).")


class Dashboard(BaseModel):
    health: OverallHealth
    metrics: SystemMetrics
    requests: RequestSummary | None = Field(description="Null when Redis cannot be read; see `unavailable`.")
    alerts: AlertSummary | None = Field(description="Null when Redis cannot be read; see `unavailable`.")
    sections: dict[str, Any] = Field(description="One entry per area that adds a section (logs, security, ...).")
    unavailable: dict[str, str] = Field(description="Parts that could not be read, and why.")
    generated_at: datetime
    cached: bool = Field(description="True when this answer came from the cache.")
    cache_ttl_seconds: int


async def _alert_summary(runtime: Runtime) -> AlertSummary:
    firing = await alerts.list_alerts(runtime.store, status="firing", limit=1000)
    severities = Counter(a.severity for a in firing)
    return AlertSummary(
        firing=len(firing),
        by_severity={"critical": severities["critical"], "warning": severities["warning"]},
        alerts=firing[:_SHOWN_ALERTS],
    )


async def _bounded(name: str, work: Awaitable[T], unavailable: dict[str, str]) -> T | None:
    """The part's value, or ``None`` with the reason noted: one failing part must not hide the others."""
    try:
        return await asyncio.wait_for(work, SECTION_TIMEOUT)
    except TimeoutError:
        unavailable[name] = f"did not answer within {SECTION_TIMEOUT:g} s"
    except PrismError as exc:
        unavailable[name] = exc.message
    except CONNECTION_ERRORS:
        unavailable[name] = "Redis connection failed"
    except Exception:  # a section from another area must not take the dashboard down
        logger.exception("dashboard_section_failed", extra={"section": name})
        unavailable[name] = "failed; see the server log"
    return None


async def _section(runtime: Runtime, name: str, unavailable: dict[str, str]) -> Any:
    value = await _bounded(name, dashboard_sections()[name](runtime), unavailable)
    return to_jsonable_python(value)


async def build(call: Call) -> Dashboard:
    """Gather every part concurrently, each bounded in time."""
    runtime = call.runtime
    unavailable: dict[str, str] = {}
    names = list(dashboard_sections())
    health, metrics, requests, alert_summary, *sections = await asyncio.gather(
        monitoring_health(call),
        monitoring_metrics(call),
        _bounded("requests", request_summary(runtime), unavailable),
        _bounded("alerts", _alert_summary(runtime), unavailable),
        *(_section(runtime, name, unavailable) for name in names),
    )
    return Dashboard(
        health=health,
        metrics=metrics,
        requests=requests,
        alerts=alert_summary,
        sections=dict(zip(names, sections, strict=True)),
        unavailable=unavailable,
        generated_at=datetime.now(UTC),
        cached=False,
        cache_ttl_seconds=runtime.settings.dashboard_cache_ttl,
    )


@capability("GET /monitoring/dashboard", scope=Scope.READ, read_only=True, resource="prism://monitoring/dashboard")
async def monitoring_dashboard(call: Call) -> Dashboard:
    """Health, system metrics, request figures, firing alerts and each area's summary in one answer.

    Request figures are throughput, error rate, percentiles and requests in flight. Cached for
    `PRISM_DASHBOARD_CACHE_TTL` seconds (`cached` says so); a part that cannot be read is null and named
    in `unavailable` instead of failing the whole answer.
    """
    runtime = call.runtime
    ttl = runtime.settings.dashboard_cache_ttl
    try:
        hit = await cache.get(runtime, CACHE_NAME)
    except CONNECTION_ERRORS:
        hit = None
    if hit is not None:
        return Dashboard.model_validate_json(hit).model_copy(update={"cached": True})
    dashboard = await build(call)
    if not dashboard.unavailable:
        try:
            await cache.put(runtime, CACHE_NAME, dashboard.model_dump_json(), ttl)
        except CONNECTION_ERRORS:
            logger.warning("dashboard_cache_write_failed")
    return dashboard
