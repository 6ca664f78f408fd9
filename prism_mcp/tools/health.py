"""Health: the detailed component view (``/healthz/detailed``) and the overall status (``/monitoring/health``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import psutil
from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability
from prism_mcp.config import Thresholds
from prism_mcp.errors import RedisUnavailableError
from prism_mcp.runtime import ComponentStatus, Runtime, health_check, health_checks
from prism_mcp.sampler import Sample, latest_sample

__all__ = ["DetailedHealth", "OverallHealth", "ThresholdCheck", "collect_components", "evaluate"]

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_BY_RANK: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
CHECK_TIMEOUT = 3.0

logger = logging.getLogger(__name__)


class DetailedHealth(BaseModel):
    status: Status = Field(description="The worst status among the components.")
    version: str
    uptime_seconds: float = Field(description="Seconds since this PRISM process started.")
    started_at: datetime
    components: list[ComponentStatus] = Field(description="Each component with its status and, if not healthy, why.")


class ThresholdCheck(BaseModel):
    measure: Literal["cpu", "memory", "disk"]
    value: float = Field(description="Current value in percent.")
    warning: float
    critical: float
    status: Status


class OverallHealth(BaseModel):
    overall_status: Status = Field(description="healthy, degraded (a warning) or unhealthy (a critical problem).")
    reasons: list[str] = Field(description="Why the status is not healthy; empty when healthy.")
    components: dict[str, Status]
    thresholds: list[ThresholdCheck]
    checked_at: datetime


@health_check("redis")
async def _redis(runtime: Runtime) -> ComponentStatus:
    try:
        latency = await runtime.store.ping()
    except RedisUnavailableError as exc:
        return ComponentStatus(name="redis", status="unhealthy", reason=exc.message)
    return ComponentStatus(name="redis", status="healthy", latency_ms=round(latency, 3))


@health_check("process")
async def _process(runtime: Runtime) -> ComponentStatus:
    proc = psutil.Process(os.getpid())
    with proc.oneshot():
        details = {
            "pid": proc.pid,
            "rss_bytes": proc.memory_info().rss,
            "threads": proc.num_threads(),
            "open_files": proc.num_fds(),
            "services": sorted(runtime.services),
        }
    return ComponentStatus(name="process", status="healthy", details=details)


async def _run_check(name: str, runtime: Runtime) -> ComponentStatus | None:
    check = health_checks()[name]
    try:
        return await asyncio.wait_for(check(runtime), CHECK_TIMEOUT)
    except TimeoutError:
        return ComponentStatus(name=name, status="unhealthy", reason=f"check timed out after {CHECK_TIMEOUT:g} s")
    except Exception as exc:  # one broken check must not take the whole health answer down with it
        logger.exception("health_check_crashed", extra={"component": name})
        return ComponentStatus(name=name, status="unhealthy", reason=f"check failed: {type(exc).__name__}")


async def collect_components(runtime: Runtime) -> list[ComponentStatus]:
    """Run every registered health check concurrently, each bounded in time."""
    results = await asyncio.gather(*(_run_check(name, runtime) for name in health_checks()))
    return [r for r in results if r is not None]


def worst(statuses: Sequence[str]) -> Status:
    top = max((_RANK[s] for s in statuses), default=0)
    return _BY_RANK[top]


def evaluate(sample: Sample, limits: Thresholds) -> list[ThresholdCheck]:
    """Compare CPU, memory and disk use with their warning and critical thresholds."""
    readings = (
        ("cpu", sample.cpu_percent, limits.cpu_warning, limits.cpu_critical),
        ("memory", sample.memory_percent, limits.memory_warning, limits.memory_critical),
        ("disk", sample.disk_percent, limits.disk_warning, limits.disk_critical),
    )
    checks = []
    for measure, value, warning, critical in readings:
        status: Status = "unhealthy" if value >= critical else "degraded" if value >= warning else "healthy"
        checks.append(
            ThresholdCheck(measure=measure, value=round(value, 2), warning=warning, critical=critical, status=status)
        )
    return checks


@capability("GET /healthz/detailed", scope=Scope.READ, read_only=True, resource="prism://health/detailed")
async def health_detailed(call: Call) -> DetailedHealth:
    """Each PRISM component (Redis, this process, workers, notifiers, integrations) with its status.

    Start here when something is wrong: a component that is not healthy says why in `reason`. Works while
    Redis is down (Redis then reports `Redis connection failed`).
    """
    runtime = call.runtime
    components = await collect_components(runtime)
    return DetailedHealth(
        status=worst([c.status for c in components]),
        version=runtime.version,
        uptime_seconds=round(runtime.uptime_seconds, 3),
        started_at=runtime.started_at,
        components=components,
    )


@capability("GET /monitoring/health", scope=Scope.READ, read_only=True, resource="prism://monitoring/health")
async def monitoring_health(call: Call) -> OverallHealth:
    """The overall status (healthy, degraded, unhealthy) with its reasons.

    Degraded means a warning threshold is crossed (CPU 80 %, memory 85 %, disk 85 % by default) or a component
    is degraded; unhealthy means a critical threshold (95 %) or an unhealthy component such as Redis.
    """
    runtime = call.runtime
    components, sample = await asyncio.gather(collect_components(runtime), latest_sample(runtime))
    checks = evaluate(sample, runtime.settings.thresholds)
    reasons = [f"{c.name}: {c.reason or c.status}" for c in components if c.status != "healthy"]
    reasons += [
        f"{c.measure} at {c.value:g} % (warning {c.warning:g} %, critical {c.critical:g} %)"
        for c in checks
        if c.status != "healthy"
    ]
    return OverallHealth(
        overall_status=worst([c.status for c in components] + [c.status for c in checks]),
        reasons=reasons,
        components={c.name: c.status for c in components},
        thresholds=checks,
        checked_at=datetime.now(UTC),
    )
