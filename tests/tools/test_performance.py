"""Performance capabilities: metrics, stats, the report, optimize and cache clear, on a real Redis."""

from __future__ import annotations

import httpx

from prism_mcp import cache
from prism_mcp.runtime import AUDIT_MAXLEN, Runtime
from tests.conftest import OPERATOR_KEY, READ_KEY
from tests.monitoring_support import call, replica


async def test_performance_metrics_has_system_process_and_requests(api: httpx.AsyncClient) -> None:
    data = (await api.get("/performance/metrics")).json()["data"]
    assert 0 <= data["system"]["memory_percent"] <= 100
    process = data["process"]
    assert process["rss_bytes"] > 0
    assert process["threads"] >= 1
    assert process["open_files"] >= 1
    assert set(data["requests"]["windows"]) == {"1m", "5m", "1h"}


async def test_stats_give_percentiles_throughput_and_error_rate_per_capability(api: httpx.AsyncClient) -> None:
    for _ in range(4):
        await api.get("/monitoring/metrics")
    data = (await api.get("/performance/stats")).json()["data"]
    figures = data["windows"]["5m"]["capabilities"]["monitoring_metrics"]
    assert figures["requests"] == 4
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["throughput_per_second"] > 0
    assert data["windows"]["5m"]["overall"]["requests"] >= 4


async def test_report_names_the_capability_and_runbook_for_each_finding(runtime: Runtime) -> None:
    strict = replica(runtime, PRISM_MEMORY_WARNING=1)
    try:
        report = await call(strict, "performance_report")
    finally:
        await strict.store.close()

    memory = next(f for f in report.findings if f.measure == "memory")
    assert (memory.severity, memory.action, memory.runbook) == ("warning", "performance_optimize", "high-memory")
    assert memory.action_available is True
    assert memory.evidence.startswith("memory at ")
    assert report.status in {"degraded", "unhealthy"}
    order = {"critical": 0, "warning": 1, "ok": 2}
    assert [order[f.severity] for f in report.findings] == sorted(order[f.severity] for f in report.findings)
    assert {f.runbook for f in report.findings} >= {"high-cpu", "slow-responses", "error-rate"}


async def test_optimize_collects_garbage_trims_streams_and_reports_before_and_after(runtime: Runtime) -> None:
    audit = runtime.store.key("audit")
    pipe = runtime.store.redis.pipeline(transaction=False)
    for n in range(AUDIT_MAXLEN + 25):
        pipe.xadd(audit, {"n": n})
    await pipe.execute()

    result = await call(runtime, "performance_optimize")

    trimmed = next(s for s in result.streams if s.stream == "audit")
    # The optimize call itself is audited after it ran, so the stream is at its cap plus that one entry.
    assert (trimmed.removed, await runtime.store.redis.xlen(audit)) == (25, AUDIT_MAXLEN + 1)
    assert result.before.rss_bytes > 0
    assert result.after.gc_tracked_objects > 0
    assert result.redis_memory_purge == "OK" or result.redis_memory_purge.startswith("not supported")


async def test_cache_clear_removes_only_this_prisms_cache_keys(runtime: Runtime, api_url: str) -> None:
    redis = runtime.store.redis
    pipe = redis.pipeline(transaction=False)
    for n in range(1200):
        pipe.set(cache.cache_key(runtime, f"bulk:{n}"), "x", ex=300)
    await pipe.execute()
    kept = [runtime.store.key("alerts", "index"), runtime.store.key("cachex"), runtime.store.key("settings", "cache")]
    other_prism = "other-prism:cache:dashboard"
    for key in [*kept, other_prism]:
        await redis.set(key, "keep", ex=300)

    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {READ_KEY}"}) as reader:
        refused = await reader.post("/performance/cache/clear")
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as operator:
        cleared = (await operator.post("/performance/cache/clear")).json()["data"]
    try:
        survivors = [await redis.get(key) for key in [*kept, other_prism]]
        left = [key async for key in redis.scan_iter(match=cache.cache_key(runtime, "*"), count=500)]
    finally:
        await redis.unlink(other_prism)

    assert refused.status_code == 403
    assert cleared["removed"] == 1200
    assert survivors == ["keep"] * 4
    assert left == []


async def test_cache_counts_a_miss_then_a_hit(runtime: Runtime) -> None:
    produced: list[int] = []

    async def compute() -> str:
        produced.append(1)
        return "answer"

    first = await cache.get_or_compute(runtime, "probe:one", 60, compute)
    second = await cache.get_or_compute(runtime, "probe:one", 60, compute)
    stats = await call(runtime, "performance_stats")

    assert (first, second, len(produced)) == (("answer", False), ("answer", True), 1)
    assert (stats.cache["probe"].hits, stats.cache["probe"].misses) == (1, 1)
