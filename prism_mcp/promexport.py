"""``GET /metrics/``: PRISM in the Prometheus text format, from a collector registry of its own per runtime.

Series and their labels, all from bounded sets (no raw path, address or secret ever becomes a label):

- ``prism_requests_total{capability,surface,status}`` and ``prism_request_duration_seconds{capability,surface}``:
  every invocation on every surface, from the request telemetry;
- ``prism_http_requests_total{route,method,status}`` and ``prism_http_request_duration_seconds{route,method}``:
  HTTP requests on the API port by route template; a path no route matches counts as ``route="unmatched"``;
- ``prism_requests_in_flight``, ``prism_cache_lookups_total{cache,result}``;
- ``prism_system_*``: the machine's CPU, memory, disk, load and network from the sampler;
- ``prism_alerts_firing{severity,category}``, ``prism_redis_up``, ``prism_redis_ping_seconds``;
- the process and Python GC collectors of prometheus_client.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prism_mcp import alerts
from prism_mcp.capability import Registry, path_regex
from prism_mcp.errors import RedisUnavailableError
from prism_mcp.runtime import Runtime
from prism_mcp.sampler import Sample, latest_sample
from prism_mcp.store.connection import CONNECTION_ERRORS
from prism_mcp.telemetry import LATENCY_BOUNDS, Cell, Telemetry, telemetry_of

__all__ = ["HttpMetrics", "metrics_endpoint", "render"]

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SEVERITIES = ("warning", "critical")
_CATEGORIES = ("system", "performance", "security")
_STATE_KEY = "promexport.registry"
_SNAPSHOT_TIMEOUT = 2.0
_SCRAPE_ERRORS: tuple[type[BaseException], ...] = (RedisUnavailableError, TimeoutError, *CONNECTION_ERRORS)


@dataclass(slots=True)
class _Snapshot:
    """What a scrape reads from Redis and the sampler just before the registry is rendered."""

    redis_up: bool = False
    redis_ping_seconds: float | None = None
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    sample: Sample | None = None


class _PrismCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.snapshot = _Snapshot()

    def collect(self) -> Iterator[Metric]:
        telemetry = telemetry_of(self.runtime)
        yield from _requests(telemetry)
        yield from _http(telemetry)
        yield from _cache(telemetry)
        yield GaugeMetricFamily(
            "prism_requests_in_flight", "Invocations running in this process now.", value=self.runtime.in_flight
        )
        yield GaugeMetricFamily(
            "prism_uptime_seconds", "Seconds since this PRISM process started.", value=self.runtime.uptime_seconds
        )
        yield from _redis(self.snapshot)
        if self.snapshot.sample is not None:
            yield from _system(self.snapshot.sample)


def _histogram(counts: list[int]) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, n in zip(LATENCY_BOUNDS, counts, strict=False):
        running += n
        buckets.append((repr(bound), float(running)))
    buckets.append(("+Inf", float(sum(counts))))
    return buckets


def _by_status(cells: dict[tuple[str, str, int], Cell]) -> dict[tuple[str, str], Cell]:
    merged: dict[tuple[str, str], Cell] = {}
    for (first, second, _), cell in cells.items():
        merged.setdefault((first, second), Cell()).merge(cell)
    return merged


def _requests(telemetry: Telemetry) -> Iterator[Metric]:
    total = CounterMetricFamily(
        "prism_requests",
        "Capability invocations by capability, surface and status.",
        labels=["capability", "surface", "status"],
    )
    for (cap, surface, status), cell in sorted(telemetry.totals.items()):
        total.add_metric([cap, surface, str(status)], cell.count)
    yield total
    duration = HistogramMetricFamily(
        "prism_request_duration_seconds",
        "Invocation latency by capability and surface.",
        labels=["capability", "surface"],
    )
    for key, cell in sorted(_by_status(telemetry.totals).items()):
        duration.add_metric(list(key), _histogram(cell.histogram), sum_value=cell.seconds)
    yield duration


def _http(telemetry: Telemetry) -> Iterator[Metric]:
    total = CounterMetricFamily(
        "prism_http_requests",
        "HTTP requests on the API port by route template, method and status.",
        labels=["route", "method", "status"],
    )
    for (route, method, status), cell in sorted(telemetry.http_totals.items()):
        total.add_metric([route, method, str(status)], cell.count)
    yield total
    duration = HistogramMetricFamily(
        "prism_http_request_duration_seconds",
        "HTTP request latency on the API port by route template and method.",
        labels=["route", "method"],
    )
    for key, cell in sorted(_by_status(telemetry.http_totals).items()):
        duration.add_metric(list(key), _histogram(cell.histogram), sum_value=cell.seconds)
    yield duration


def _cache(telemetry: Telemetry) -> Iterator[Metric]:
    lookups = CounterMetricFamily(
        "prism_cache_lookups",
        "Cache lookups in this process by cache and result (hit or miss).",
        labels=["cache", "result"],
    )
    for (name, result), n in sorted(telemetry.cache_totals.items()):
        lookups.add_metric([name, result], n)
    yield lookups


def _redis(snapshot: _Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "prism_redis_up", "1 when Redis answered the scrape's ping, else 0.", value=int(snapshot.redis_up)
    )
    if snapshot.redis_ping_seconds is not None:
        yield GaugeMetricFamily(
            "prism_redis_ping_seconds", "Round trip of the scrape's Redis ping.", value=snapshot.redis_ping_seconds
        )
    if not snapshot.redis_up:
        return
    firing = GaugeMetricFamily(
        "prism_alerts_firing", "Alerts firing now by severity and category.", labels=["severity", "category"]
    )
    for severity in _SEVERITIES:
        for category in _CATEGORIES:
            firing.add_metric([severity, category], snapshot.alerts[(severity, category)])
    yield firing


def _system(sample: Sample) -> Iterator[Metric]:
    gauges = (
        (
            "prism_system_cpu_usage_ratio",
            "CPU use of the machine over the last sampling interval (0-1).",
            sample.cpu_percent / 100,
        ),
        ("prism_system_memory_usage_ratio", "Memory in use on the machine (0-1).", sample.memory_percent / 100),
        (
            "prism_system_disk_usage_ratio",
            "Use of the file system holding PRISM's data (0-1).",
            sample.disk_percent / 100,
        ),
        ("prism_system_memory_total_bytes", "Memory of the machine.", sample.memory_total),
        ("prism_system_memory_available_bytes", "Memory available on the machine.", sample.memory_available),
        ("prism_system_disk_free_bytes", "Free space on the file system holding PRISM's data.", sample.disk_free),
        ("prism_system_load1", "1 minute load average.", sample.load_average[0]),
        ("prism_system_cpus", "Logical CPUs of the machine.", sample.cpu_count),
    )
    for name, text, value in gauges:
        yield GaugeMetricFamily(name, text, value=float(value))
    yield CounterMetricFamily(
        "prism_system_network_sent_bytes", "Bytes sent by the machine since boot.", value=sample.net_bytes_sent
    )
    yield CounterMetricFamily(
        "prism_system_network_received_bytes", "Bytes received by the machine since boot.", value=sample.net_bytes_recv
    )


def _registry(runtime: Runtime) -> tuple[CollectorRegistry, _PrismCollector]:
    found: tuple[CollectorRegistry, _PrismCollector] | None = runtime.state.get(_STATE_KEY)
    if found is None:
        registry = CollectorRegistry(auto_describe=False)
        collector = _PrismCollector(runtime)
        registry.register(collector)
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        found = runtime.state[_STATE_KEY] = (registry, collector)
    return found


async def _snapshot(runtime: Runtime) -> _Snapshot:
    snapshot = _Snapshot(sample=await latest_sample(runtime))
    try:
        snapshot.redis_ping_seconds = await asyncio.wait_for(runtime.store.ping(), _SNAPSHOT_TIMEOUT) / 1000.0
        firing = await asyncio.wait_for(
            alerts.list_alerts(runtime.store, status="firing", limit=10_000), _SNAPSHOT_TIMEOUT
        )
    except _SCRAPE_ERRORS:
        return snapshot
    snapshot.redis_up = True
    snapshot.alerts.update((a.severity, a.category) for a in firing)
    return snapshot


async def render(runtime: Runtime) -> bytes:
    """One scrape: read Redis and the sampler, then render every series in the text format."""
    registry, collector = _registry(runtime)
    collector.snapshot = await _snapshot(runtime)
    return generate_latest(registry)


async def metrics_endpoint(request: Request) -> Response:
    return Response(await render(request.app.state.runtime), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """ASGI layer counting each HTTP request by its route template: a capability's declared path, one of the
    bridge's own routes, or ``unmatched`` for a path nothing serves (so unknown paths add no series)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, caps: Registry) -> None:
        self.app = app
        self.telemetry = telemetry_of(runtime)
        self.static = frozenset(cap.path for cap in caps if not cap.path_params)
        self.templated = [(path_regex(cap.path), cap.path) for cap in caps if cap.path_params]

    def template(self, scope: Scope) -> str:
        path: str = scope["path"]
        if path in self.static:
            return path
        for pattern, template in self.templated:
            if pattern.fullmatch(path):
                return template
        route = scope.get("route")
        return route.path if isinstance(route, Route) else UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sender(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sender)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.telemetry.observe_http(self.template(scope), method, status, time.perf_counter() - started)
