"""Request telemetry: recorded in memory, flushed to shared Redis buckets, the same figures on every surface."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from prism_mcp.store.connection import CONNECTION_ERRORS
from prism_mcp.telemetry import FINE, LATENCY_BOUNDS, Aggregate, read_windows, telemetry_of
from tests.conftest import ADMIN_KEY, free_port
from tests.mcp_client import mcp_client
from tests.monitoring_support import call, replica


async def _buckets_written(runtime: Runtime, since: float) -> int:
    """How many 10 s buckets from ``since`` until now exist (EXISTS on each: no scan of a shared keyspace)."""
    first = int(since // FINE) * FINE
    starts = range(first, int(time.time()) + 1, FINE)
    return int(await runtime.store.redis.exists(*(runtime.store.key("telemetry", f"{FINE}s", s) for s in starts)))


async def test_a_request_over_mcp_shows_in_the_same_figures_as_one_over_rest(
    api: httpx.AsyncClient, mcp_url: str
) -> None:
    assert (await api.get("/monitoring/metrics")).status_code == 200
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        await client.read_resource("prism://monitoring/metrics")

    stats = (await api.get("/performance/stats")).json()["data"]
    figures = stats["windows"]["1m"]["capabilities"]["monitoring_metrics"]
    assert figures["by_surface"] == {"mcp": 1, "rest": 1}
    assert figures["requests"] == 2
    assert stats["windows"]["1h"]["capabilities"]["monitoring_metrics"]["requests"] == 2


async def test_recording_a_request_writes_nothing_to_redis_until_the_flush(runtime: Runtime) -> None:
    lazy = replica(runtime, PRISM_TELEMETRY_FLUSH_INTERVAL=60)
    lazy.observers.append(telemetry_of(lazy).observe)
    since = time.time()
    try:
        await call(lazy, "monitoring_metrics")
        assert await _buckets_written(lazy, since) == 0
        assert telemetry_of(lazy).pending

        await telemetry_of(lazy).flush()
        assert await _buckets_written(lazy, since) == 1
        assert telemetry_of(lazy).pending == {}
    finally:
        await lazy.store.close()


async def test_figures_of_two_replicas_add_up_and_percentiles_merge(runtime: Runtime) -> None:
    other = replica(runtime)
    other.observers.append(telemetry_of(other).observe)
    try:
        for _ in range(3):
            await call(runtime, "monitoring_metrics", surface="rest")
        for _ in range(2):
            await call(other, "monitoring_metrics", surface="worker")
        await telemetry_of(other).flush()

        window = (await read_windows(runtime, ["5m"]))["5m"]
    finally:
        await other.store.close()
    agg = window.capabilities["monitoring_metrics"]
    assert (agg.count, dict(agg.by_surface)) == (5, {"rest": 3, "worker": 2})
    assert sum(agg.histogram) == 5
    p50 = agg.percentile(0.5)
    assert p50 is not None
    assert 0 < p50 <= LATENCY_BOUNDS[-1]


async def test_errors_and_refusals_are_counted_apart(runtime: Runtime, api: httpx.AsyncClient) -> None:
    await api.get("/monitoring/alerts", params={"limit": 0})
    await api.get("/monitoring/alerts")

    stats = (await api.get("/performance/stats")).json()["data"]
    figures = stats["windows"]["1m"]["capabilities"]["alerts_list"]
    assert (figures["requests"], figures["client_errors"], figures["errors"]) == (2, 1, 0)
    assert figures["by_status"] == {"200": 1, "422": 1}
    assert figures["error_rate_percent"] == 0.0


def test_percentile_interpolates_inside_the_fixed_buckets() -> None:
    agg = Aggregate()
    slot = LATENCY_BOUNDS.index(0.01)
    agg.histogram[slot] = 10
    agg.count = 10

    p50 = agg.percentile(0.5)

    assert p50 is not None
    assert LATENCY_BOUNDS[slot - 1] < p50 < LATENCY_BOUNDS[slot]
    assert Aggregate().percentile(0.5) is None


async def test_in_flight_counts_every_replica_that_reported(runtime: Runtime) -> None:
    other = replica(runtime)
    other.in_flight = 4
    try:
        await telemetry_of(other).flush()
        metrics = await call(runtime, "performance_metrics")
    finally:
        await other.store.close()
    # This process reports the one call it is running (performance_metrics itself).
    assert metrics.requests.in_flight == 5
    assert metrics.requests.replicas_reporting == 2
    assert metrics.requests.in_flight_this_process == 1


async def test_figures_are_kept_while_redis_is_unreachable_and_flushed_when_it_returns(runtime: Runtime) -> None:
    dead = Store(f"redis://127.0.0.1:{free_port()}/0", prefix=runtime.store.prefix, timeout=0.5)
    cut_off = Runtime(runtime.settings, dead, services=frozenset({"cli"}))
    telemetry = telemetry_of(cut_off)
    cut_off.observers.append(telemetry.observe)
    await call(cut_off, "monitoring_metrics")
    telemetry.count_cache("dashboard", hit=True)

    with pytest.raises(CONNECTION_ERRORS):
        await telemetry.flush()
    await dead.close()
    assert telemetry.pending
    assert dict(telemetry.pending_cache) == {"hit|dashboard": 1}

    cut_off.store = runtime.store
    await telemetry.flush()
    window = (await read_windows(runtime, ["1m"]))["1m"]
    assert window.capabilities["monitoring_metrics"].count == 1


async def test_the_background_flusher_writes_figures_without_being_asked(runtime: Runtime) -> None:
    quick = replica(runtime, PRISM_TELEMETRY_FLUSH_INTERVAL=0.05)
    await quick.start()
    try:
        since = time.time()
        await call(quick, "monitoring_metrics")
        deadline = asyncio.get_running_loop().time() + 10
        while not await _buckets_written(quick, since):
            assert asyncio.get_running_loop().time() < deadline, "the flusher wrote no bucket within 10 s"
            await asyncio.sleep(0.05)
    finally:
        await quick.stop()
    assert telemetry_of(quick).pending == {}
