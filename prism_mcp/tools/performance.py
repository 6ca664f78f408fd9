"""Performance: process and request metrics, latency statistics, a report against the thresholds, optimisation."""

from __future__ import annotations

import gc
import os
import time
from datetime import UTC, datetime
from typing import Literal

import psutil
from pydantic import BaseModel, Field
from redis.exceptions import ResponseError

from prism_mcp import cache
from prism_mcp.capability import Call, Scope, capability, registry
from prism_mcp.outbox import OUTBOX_MAXLEN, outbox_key
from prism_mcp.runtime import AUDIT_MAXLEN, Runtime
from prism_mcp.security_events import EVENTS_MAXLEN, events_key
from prism_mcp.telemetry import LATENCY_BOUNDS, Figures, cache_counts, in_flight_total, read_windows
from prism_mcp.thresholds import RULES, Level, Rule, level_of, readings
from prism_mcp.tools.monitoring import SystemMetrics, monitoring_metrics

__all__ = ["PerformanceMetrics", "PerformanceReport", "PerformanceStats", "RequestSummary", "request_summary"]

_PROCESS_KEY = "performance.process"


class RequestSummary(BaseModel):
    in_flight: int = Field(description="Invocations running now, summed over every replica that reported lately.")
    in_flight_this_process: int
    replicas_reporting: int = Field(description="PRISM processes whose figures are in these numbers.")
    windows: dict[str, Figures] = Field(description="All capabilities together over the last 1m, 5m and 1h.")


class ProcessMetrics(BaseModel):
    pid: int
    rss_bytes: int = Field(description="Resident memory of this PRISM process.")
    vms_bytes: int
    threads: int
    open_files: int = Field(description="Open file descriptors (files and sockets).")
    cpu_percent: float = Field(description="CPU use of this process since the previous reading (100 = one core).")
    cpu_user_seconds: float
    cpu_system_seconds: float
    uptime_seconds: float
    gc_counts: list[int] = Field(description="Python's garbage collector counters per generation.")


class PerformanceMetrics(BaseModel):
    system: SystemMetrics
    process: ProcessMetrics
    requests: RequestSummary


class WindowStats(BaseModel):
    window: str
    seconds: float = Field(description="Seconds the window covers (its buckets, the current one included).")
    overall: Figures
    capabilities: dict[str, Figures]


class CacheStats(BaseModel):
    hits: int
    misses: int
    hit_rate_percent: float


class PerformanceStats(BaseModel):
    windows: dict[str, WindowStats]
    cache: dict[str, CacheStats] = Field(description="Hits and misses per cache, over every replica.")
    latency_bounds_seconds: list[float] = Field(description="Histogram bucket bounds the percentiles interpolate in.")
    generated_at: datetime


class Finding(BaseModel):
    measure: str
    severity: Level = Field(description="Where the reading stands now: ok, warning or critical.")
    value: float | None
    unit: str
    warning: float
    critical: float
    evidence: str = Field(description="The figures behind the finding.")
    action: str = Field(description="The PRISM capability to call about it.")
    action_available: bool = Field(description="Whether that capability is present in this PRISM.")
    runbook: str = Field(description="Id of the runbook that addresses it.")


class SlowCapability(BaseModel):
    capability: str
    requests: int
    p95_ms: float | None
    errors: int


class PerformanceReport(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    findings: list[Finding] = Field(description="Every measure, the worst first.")
    slowest: list[SlowCapability] = Field(description="Capabilities with the highest p95 latency over 5 minutes.")
    summary: str
    generated_at: datetime


class OptimizeFigures(BaseModel):
    rss_bytes: int
    gc_counts: list[int]
    gc_tracked_objects: int
    redis_used_memory_bytes: int | None


class StreamTrim(BaseModel):
    stream: str
    cap: int
    removed: int


class OptimizeResult(BaseModel):
    before: OptimizeFigures
    after: OptimizeFigures
    collected_objects: int
    rss_freed_bytes: int
    streams: list[StreamTrim]
    redis_memory_purge: str = Field(description="OK, or why Redis did not purge.")
    duration_ms: float


class CacheClearResult(BaseModel):
    removed: int
    namespace: str


async def request_summary(runtime: Runtime) -> RequestSummary:
    """All capabilities together per window, and the requests in flight across replicas."""
    windows = await read_windows(runtime)
    in_flight, replicas = await in_flight_total(runtime)
    return RequestSummary(
        in_flight=in_flight,
        in_flight_this_process=runtime.in_flight,
        replicas_reporting=replicas,
        windows={name: Figures.of(data.merged(), data.span) for name, data in windows.items()},
    )


def _process_metrics(runtime: Runtime) -> ProcessMetrics:
    proc: psutil.Process | None = runtime.state.get(_PROCESS_KEY)
    if proc is None:
        proc = runtime.state[_PROCESS_KEY] = psutil.Process(os.getpid())
    with proc.oneshot():
        memory = proc.memory_info()
        times = proc.cpu_times()
        return ProcessMetrics(
            pid=proc.pid,
            rss_bytes=memory.rss,
            vms_bytes=memory.vms,
            threads=proc.num_threads(),
            open_files=proc.num_fds(),
            cpu_percent=round(proc.cpu_percent(interval=None), 2),
            cpu_user_seconds=round(times.user, 3),
            cpu_system_seconds=round(times.system, 3),
            uptime_seconds=round(runtime.uptime_seconds, 3),
            gc_counts=list(gc.get_count()),
        )


@capability("GET /performance/metrics", scope=Scope.READ, read_only=True, resource="prism://performance/metrics")
async def performance_metrics(call: Call) -> PerformanceMetrics:
    """System, process (RSS, threads, open files, CPU) and request figures in one read.

    `system` is the machine's CPU, memory, disk and network; `requests` the throughput, error rate, percentiles
    over 1m/5m/1h and requests in flight. Look here first for high CPU or memory; `performance_optimize` runs
    garbage collection and trims PRISM's streams.
    """
    runtime = call.runtime
    return PerformanceMetrics(
        system=await monitoring_metrics(call),
        process=_process_metrics(runtime),
        requests=await request_summary(runtime),
    )


@capability("GET /performance/stats", scope=Scope.READ, read_only=True, resource="prism://performance/stats")
async def performance_stats(call: Call) -> PerformanceStats:
    """Latency p50/p95/p99, throughput and error rate per capability over 1m/5m/1h; cache hits and misses.

    Figures are summed over every replica. Errors are answers with status 500 or above; refusals (401, 403, 404,
    422, 429) count as client errors.
    """
    runtime = call.runtime
    windows = await read_windows(runtime)
    counts = await cache_counts(runtime)
    return PerformanceStats(
        windows={
            name: WindowStats(
                window=name,
                seconds=round(data.span, 3),
                overall=Figures.of(data.merged(), data.span),
                capabilities={cap: Figures.of(agg, data.span) for cap, agg in sorted(data.capabilities.items())},
            )
            for name, data in windows.items()
        },
        cache={name: _cache_stats(hits, misses) for name, (hits, misses) in counts.items()},
        latency_bounds_seconds=list(LATENCY_BOUNDS),
        generated_at=datetime.now(UTC),
    )


def _cache_stats(hits: int, misses: int) -> CacheStats:
    total = hits + misses
    return CacheStats(hits=hits, misses=misses, hit_rate_percent=round(100.0 * hits / total, 2) if total else 0.0)


_ACTIONS: dict[str, str] = {
    "cpu": "performance_optimize",
    "memory": "performance_optimize",
    "disk": "logs_cleanup",
    "response_time": "performance_stats",
    "error_rate": "logs_search",
}


@capability("GET /performance/report", scope=Scope.READ, read_only=True, resource="prism://performance/report")
async def performance_report(call: Call) -> PerformanceReport:
    """Findings against the thresholds, worst first, each with evidence, the capability to call and a runbook id.

    Measures: CPU, memory, disk, p95 response time and error rate over 5 minutes; also the slowest capabilities.
    Response time and error rate need `PRISM_ALERT_MIN_REQUESTS` requests in 5 minutes to be judged.
    """
    runtime = call.runtime
    window = (await read_windows(runtime, ["5m"]))["5m"]
    values = await readings(runtime, window)
    findings = [_finding(rule, values[rule.measure], runtime) for rule in RULES]
    findings.sort(key=lambda f: {"critical": 0, "warning": 1, "ok": 2}[f.severity])
    slowest = sorted(window.capabilities.items(), key=lambda item: item[1].percentile(0.95) or 0.0, reverse=True)
    worst = findings[0].severity
    status: Literal["healthy", "degraded", "unhealthy"] = (
        "unhealthy" if worst == "critical" else "degraded" if worst == "warning" else "healthy"
    )
    flagged = [f"{f.measure} ({f.severity})" for f in findings if f.severity != "ok"]
    return PerformanceReport(
        status=status,
        findings=findings,
        slowest=[_slow(name, agg.count, agg.percentile(0.95), agg.errors) for name, agg in slowest[:5]],
        summary="All measures are within their thresholds." if not flagged else "Over threshold: " + ", ".join(flagged),
        generated_at=datetime.now(UTC),
    )


def _slow(name: str, count: int, p95: float | None, errors: int) -> SlowCapability:
    return SlowCapability(
        capability=name, requests=count, p95_ms=None if p95 is None else round(p95 * 1000, 3), errors=errors
    )


def _finding(rule: Rule, value: float | None, runtime: Runtime) -> Finding:
    warning, critical = rule.limits(runtime.settings.thresholds)
    severity = level_of(value, warning, critical)
    if value is None:
        evidence = f"{rule.label}: too few requests in the last 5 minutes to judge"
    else:
        evidence = f"{rule.label} at {value:.4g} {rule.unit} (warning {warning:g}, critical {critical:g} {rule.unit})"
    action = _ACTIONS[rule.measure]
    return Finding(
        measure=rule.measure,
        severity=severity,
        value=None if value is None else round(value, 4),
        unit=rule.unit,
        warning=warning,
        critical=critical,
        evidence=evidence,
        action=action,
        action_available=registry.get(action) is not None,
        runbook=rule.runbook,
    )


async def _optimize_figures(runtime: Runtime) -> OptimizeFigures:
    memory: int | None = None
    try:
        info = await runtime.store.redis.info(section="memory")
        memory = int(info.get("used_memory", 0))
    except ResponseError:
        memory = None
    return OptimizeFigures(
        rss_bytes=psutil.Process(os.getpid()).memory_info().rss,
        gc_counts=list(gc.get_count()),
        gc_tracked_objects=len(gc.get_objects()),
        redis_used_memory_bytes=memory,
    )


async def _trim_streams(runtime: Runtime) -> list[StreamTrim]:
    store = runtime.store
    streams = (
        ("audit", store.key("audit"), AUDIT_MAXLEN),
        ("outbox", outbox_key(store), OUTBOX_MAXLEN),
        ("security_events", events_key(store), EVENTS_MAXLEN),
    )
    out = []
    for name, key, cap in streams:
        removed = await store.redis.xtrim(key, maxlen=cap, approximate=False)
        out.append(StreamTrim(stream=name, cap=cap, removed=int(removed)))
    return out


async def _memory_purge(runtime: Runtime) -> str:
    try:
        answer = await runtime.store.redis.execute_command("MEMORY", "PURGE")
    except ResponseError as exc:
        return f"not supported by this Redis server: {exc}"
    return str(answer)


@capability("POST /performance/optimize", scope=Scope.OPERATE, idempotent=True)
async def performance_optimize(call: Call) -> OptimizeResult:
    """Free memory (garbage collection, streams trimmed to their caps, Redis MEMORY PURGE); before and after
    figures.

    The streams are audit, outbox and security events; `MEMORY PURGE` only where the server supports it. Safe to
    run at any time (the guide's answer to high CPU or memory); it deletes no cache entry or alert.
    """
    runtime = call.runtime
    started = time.perf_counter()
    before = await _optimize_figures(runtime)
    collected = gc.collect()
    streams = await _trim_streams(runtime)
    purge = await _memory_purge(runtime)
    after = await _optimize_figures(runtime)
    return OptimizeResult(
        before=before,
        after=after,
        collected_objects=collected,
        rss_freed_bytes=before.rss_bytes - after.rss_bytes,
        streams=streams,
        redis_memory_purge=purge,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


@capability("POST /performance/cache/clear", scope=Scope.OPERATE, destructive=True, idempotent=True)
async def performance_cache_clear(call: Call) -> CacheClearResult:
    """Remove every entry of PRISM's cache and say how many.

    Cached reads are the dashboard and, later, Notion and model answers. Only keys under this PRISM's cache
    namespace are removed (SCAN and UNLINK); alerts, logs, settings and every
    other key are untouched. Cached reads are recomputed on their next request.
    """
    removed = await cache.clear(call.runtime)
    return CacheClearResult(removed=removed, namespace=cache.cache_key(call.runtime, "*"))
