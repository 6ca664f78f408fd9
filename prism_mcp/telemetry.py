"""Request telemetry: counts, errors and latency of every invocation on every surface, per process and across replicas.

Recording a request is a few dictionary updates in memory (:meth:`Telemetry.observe`, an invoke observer): no
Redis round trip on the request path. A background task flushes the pending figures every
``PRISM_TELEMETRY_FLUSH_INTERVAL`` seconds in one pipeline into time buckets shared by every replica:

- ``telemetry:10s:<start>`` and ``telemetry:60s:<start>``: hashes of ``n|<capability>|<surface>|<status>``
  (requests), ``t|<capability>`` (seconds spent) and ``h|<capability>|<i>`` (requests whose latency fell in
  histogram bucket ``i`` of :data:`LATENCY_BOUNDS`). The 10 s buckets serve the 1 and 5 minute windows, the 60 s
  buckets the hour. Fixed bucket bounds make histograms of different replicas add up, so percentiles hold across
  replicas.
- ``telemetry:cache``: cache hits and misses per cache name, kept until 30 days after the last lookup.
- ``telemetry:inflight``: each process's running invocations with the time it last reported them.

The same observations also feed process-lifetime totals that :mod:`prism_mcp.promexport` exposes on ``/metrics/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from prism_mcp.runtime import Runtime, background_task, on_runtime_start
from prism_mcp.store.connection import CONNECTION_ERRORS

if TYPE_CHECKING:
    from prism_mcp.capability import Call, Capability

__all__ = [
    "LATENCY_BOUNDS",
    "WINDOWS",
    "Aggregate",
    "Cell",
    "Figures",
    "Telemetry",
    "WindowData",
    "cache_counts",
    "in_flight_total",
    "read_windows",
    "telemetry_of",
]

logger = logging.getLogger(__name__)

# Upper bounds in seconds of the latency histogram; one more bucket holds everything slower.
LATENCY_BOUNDS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FINE = 10
COARSE = 60
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}
_FINE_TTL = 600
_COARSE_TTL = 3600 + 2 * COARSE
_INFLIGHT_TTL = 300
# Cache hit and miss totals live as long as the cache sees use, and go 30 days after its last lookup.
_CACHE_COUNTS_TTL = 30 * 86400
_STATE_KEY = "telemetry"
# Pending figures older than this are dropped when Redis stays unreachable, so memory stays bounded.
_PENDING_MAX_AGE = 3600


@dataclass(slots=True)
class Aggregate:
    """Requests of one capability (or several, merged) over one window."""

    count: int = 0
    errors: int = 0
    client_errors: int = 0
    seconds: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    by_status: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_surface: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Aggregate) -> None:
        self.count += other.count
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.seconds += other.seconds
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        for status, n in other.by_status.items():
            self.by_status[status] += n
        for surface, n in other.by_surface.items():
            self.by_surface[surface] += n

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile in seconds, interpolated inside its histogram bucket; ``None`` without requests."""
        total = sum(self.histogram)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.histogram):
            if n and seen + n >= rank:
                if i == len(LATENCY_BOUNDS):
                    return LATENCY_BOUNDS[-1]
                low = LATENCY_BOUNDS[i - 1] if i else 0.0
                return low + (LATENCY_BOUNDS[i] - low) * (rank - seen) / n
            seen += n
        return LATENCY_BOUNDS[-1]


class Figures(BaseModel):
    """Request figures over one window, summed over every replica."""

    requests: int
    errors: int = Field(description="Requests answered with a server error (status 500 or above).")
    client_errors: int = Field(description="Requests refused as the caller's fault (status 400-499).")
    throughput_per_second: float
    error_rate_percent: float = Field(description="errors / requests, in percent; 0 without requests.")
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    by_surface: dict[str, int]
    by_status: dict[str, int]

    @classmethod
    def of(cls, agg: Aggregate, span: float) -> Figures:
        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000.0, 3)

        return cls(
            requests=agg.count,
            errors=agg.errors,
            client_errors=agg.client_errors,
            throughput_per_second=round(agg.count / span, 4) if span > 0 else 0.0,
            error_rate_percent=round(100.0 * agg.errors / agg.count, 3) if agg.count else 0.0,
            mean_ms=ms(agg.seconds / agg.count) if agg.count else None,
            p50_ms=ms(agg.percentile(0.50)),
            p95_ms=ms(agg.percentile(0.95)),
            p99_ms=ms(agg.percentile(0.99)),
            by_surface=dict(sorted(agg.by_surface.items())),
            by_status=dict(sorted(agg.by_status.items())),
        )


@dataclass(slots=True)
class WindowData:
    """Every capability's aggregate over one window of ``span`` seconds."""

    window: str
    span: float
    capabilities: dict[str, Aggregate]

    def merged(self, names: Iterable[str] | None = None) -> Aggregate:
        wanted = set(self.capabilities) if names is None else set(names)
        total = Aggregate()
        for name, agg in self.capabilities.items():
            if name in wanted:
                total.add(agg)
        return total


class Cell:
    """Requests of one (capability, surface, status): how many, seconds spent, and the latency histogram."""

    __slots__ = ("count", "histogram", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.histogram = [0] * (len(LATENCY_BOUNDS) + 1)

    def add(self, slot: int, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.histogram[slot] += 1

    def merge(self, other: Cell) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]


CellKey = tuple[str, str, int]


class Telemetry:
    """One process's request figures: pending buckets for Redis and lifetime totals for Prometheus.

    Both are keyed by ``(capability, surface, status)`` (HTTP: ``(route, method, status)``); field names for
    Redis are only built at flush time, so recording stays a few dictionary lookups.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.instance = uuid.uuid4().hex[:12]
        self.pending: dict[int, dict[CellKey, Cell]] = {}
        self.pending_cache: defaultdict[str, int] = defaultdict(int)
        self.totals: dict[CellKey, Cell] = {}
        self.http_totals: dict[CellKey, Cell] = {}
        self.cache_totals: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.flush_failures = 0

    def observe(self, cap: Capability, call: Call, outcome: str, status: int, seconds: float) -> None:
        """The invoke observer: a handful of in-memory updates, never I/O."""
        key = (cap.name, call.surface, status)
        slot = bisect_left(LATENCY_BOUNDS, seconds)
        start = int(time.time() // FINE) * FINE
        cells = self.pending.get(start)
        if cells is None:
            cells = self.pending[start] = {}
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.add(slot, seconds)
        total = self.totals.get(key)
        if total is None:
            total = self.totals[key] = Cell()
        total.add(slot, seconds)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request on the API port, by route template (or ``unmatched``); Prometheus only."""
        key = (route, method, status)
        cell = self.http_totals.get(key)
        if cell is None:
            cell = self.http_totals[key] = Cell()
        cell.add(bisect_left(LATENCY_BOUNDS, seconds), seconds)

    def count_cache(self, name: str, hit: bool) -> None:
        outcome = "hit" if hit else "miss"
        self.cache_totals[(name, outcome)] += 1
        self.pending_cache[f"{outcome}|{name}"] += 1

    async def flush(self) -> None:
        """Write the pending figures and this process's in-flight count to Redis in one pipeline.

        Raises the connection error when Redis is unreachable; the figures are then kept for the next flush.
        """
        pending, self.pending = self.pending, {}
        cache, self.pending_cache = self.pending_cache, defaultdict(int)
        store = self.runtime.store
        pipe = store.redis.pipeline(transaction=False)
        for start, cells in pending.items():
            fine = store.key("telemetry", f"{FINE}s", start)
            coarse = store.key("telemetry", f"{COARSE}s", start // COARSE * COARSE)
            counts, seconds = _fields(cells)
            for key in (fine, coarse):
                for name, value in counts.items():
                    pipe.hincrby(key, name, value)
                for name, spent in seconds.items():
                    pipe.hincrbyfloat(key, name, spent)
            pipe.expire(fine, _FINE_TTL)
            pipe.expire(coarse, _COARSE_TTL)
        if cache:
            counts_key = store.key("telemetry", "cache")
            for name, count in cache.items():
                pipe.hincrby(counts_key, name, count)
            pipe.expire(counts_key, _CACHE_COUNTS_TTL)
        inflight = store.key("telemetry", "inflight")
        pipe.hset(inflight, self.instance, f"{self.runtime.in_flight} {time.time():.3f}")
        pipe.expire(inflight, _INFLIGHT_TTL)
        try:
            await pipe.execute()
        except CONNECTION_ERRORS:
            self._keep(pending, cache)
            raise

    def _keep(self, pending: dict[int, dict[CellKey, Cell]], cache: defaultdict[str, int]) -> None:
        oldest = time.time() - _PENDING_MAX_AGE
        for start, cells in pending.items():
            if start < oldest:
                continue
            target = self.pending.setdefault(start, {})
            for key, cell in cells.items():
                target.setdefault(key, Cell()).merge(cell)
        for name, count in cache.items():
            self.pending_cache[name] += count


def _fields(cells: dict[CellKey, Cell]) -> tuple[dict[str, int], dict[str, float]]:
    """The hash fields of one bucket: ``n|…`` and ``h|…`` counts, ``t|…`` seconds."""
    counts: defaultdict[str, int] = defaultdict(int)
    seconds: defaultdict[str, float] = defaultdict(float)
    for (name, surface, status), cell in cells.items():
        counts[f"n|{name}|{surface}|{status}"] += cell.count
        seconds[f"t|{name}"] += cell.seconds
        for slot, n in enumerate(cell.histogram):
            if n:
                counts[f"h|{name}|{slot}"] += n
    return counts, seconds


def telemetry_of(runtime: Runtime) -> Telemetry:
    """The runtime's telemetry, created on first use (a runtime that was never started still counts)."""
    found: Telemetry | None = runtime.state.get(_STATE_KEY)
    if found is None:
        found = runtime.state[_STATE_KEY] = Telemetry(runtime)
    return found


@on_runtime_start
def _install(runtime: Runtime) -> None:
    telemetry = telemetry_of(runtime)
    if telemetry.observe not in runtime.observers:
        runtime.observers.append(telemetry.observe)


@background_task("telemetry", services=("api", "mcp", "web", "worker", "notifier", "stdio", "cli"))
async def run_flusher(runtime: Runtime) -> None:
    """Flush this process's figures every interval; on shutdown, flush what is left once more."""
    telemetry = telemetry_of(runtime)
    interval = runtime.settings.telemetry_flush_interval
    try:
        while True:
            await asyncio.sleep(interval)
            await _flush_logged(telemetry)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_flush_logged(telemetry), timeout=2.0)


async def _flush_logged(telemetry: Telemetry) -> None:
    try:
        await telemetry.flush()
    except CONNECTION_ERRORS:
        telemetry.flush_failures += 1
        if telemetry.flush_failures == 1:
            logger.warning("telemetry_flush_failed", extra={"instance": telemetry.instance})
        return
    if telemetry.flush_failures:
        logger.info("telemetry_flush_recovered", extra={"failures": telemetry.flush_failures})
        telemetry.flush_failures = 0


async def read_windows(runtime: Runtime, windows: Iterable[str] = WINDOWS) -> dict[str, WindowData]:
    """Figures over each window from the shared buckets, after flushing this process's own pending figures."""
    telemetry = telemetry_of(runtime)
    await telemetry.flush()
    now = time.time()
    plans = {name: _plan(now, WINDOWS[name]) for name in windows}
    store = runtime.store
    pipe = store.redis.pipeline(transaction=False)
    for width, starts, _ in plans.values():
        for start in starts:
            pipe.hgetall(store.key("telemetry", f"{width}s", start))
    replies = iter(await pipe.execute())
    out = {}
    for name, (_, starts, span) in plans.items():
        hashes = [next(replies) for _ in starts]
        out[name] = WindowData(name, span, _aggregate(hashes))
    return out


def _plan(now: float, seconds: int) -> tuple[int, list[int], float]:
    """Which buckets make up the last ``seconds`` (the current one included) and how many seconds they cover."""
    width = FINE if seconds <= 300 else COARSE
    current = int(now // width) * width
    first = current - (seconds - width)
    return width, list(range(first, current + 1, width)), max(now - first, 1.0)


def _aggregate(hashes: Iterable[dict[str, str]]) -> dict[str, Aggregate]:
    out: defaultdict[str, Aggregate] = defaultdict(Aggregate)
    for fields in hashes:
        for name, raw in fields.items():
            kind, _, rest = name.partition("|")
            if kind == "n":
                cap, surface, status = rest.split("|")
                _count(out[cap], surface, status, int(raw))
            elif kind == "t":
                out[rest].seconds += float(raw)
            elif kind == "h":
                cap, slot = rest.rsplit("|", 1)
                out[cap].histogram[int(slot)] += int(raw)
    return dict(out)


def _count(agg: Aggregate, surface: str, status: str, n: int) -> None:
    agg.count += n
    agg.by_status[status] += n
    agg.by_surface[surface] += n
    code = int(status)
    if code >= 500:
        agg.errors += n
    elif code >= 400:
        agg.client_errors += n


async def in_flight_total(runtime: Runtime) -> tuple[int, int]:
    """Invocations running now across every replica that reported lately, and how many replicas that is."""
    store = runtime.store
    key = store.key("telemetry", "inflight")
    entries: dict[str, str] = await store.redis.hgetall(key)
    fresh_after = time.time() - max(5.0, 3 * runtime.settings.telemetry_flush_interval)
    total, replicas, stale = 0, 0, []
    for instance, raw in entries.items():
        count, _, stamp = raw.partition(" ")
        if float(stamp or 0) < fresh_after:
            stale.append(instance)
            continue
        total += int(count)
        replicas += 1
    if stale:
        await store.redis.hdel(key, *stale)
    return total, replicas


async def cache_counts(runtime: Runtime) -> dict[str, tuple[int, int]]:
    """Hits and misses per cache name, over every replica; flushes this process's own counts first."""
    await telemetry_of(runtime).flush()
    raw: dict[str, str] = await runtime.store.redis.hgetall(runtime.store.key("telemetry", "cache"))
    counts: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, value in raw.items():
        outcome, _, cache = name.partition("|")
        counts[cache][0 if outcome == "hit" else 1] += int(value)
    return {name: (hits, misses) for name, (hits, misses) in sorted(counts.items())}
