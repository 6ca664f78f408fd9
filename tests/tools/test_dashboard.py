"""The dashboard: every part in one answer, sections plugged in by other areas, cached, alive without Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from prism_mcp import alerts
from prism_mcp.runtime import Runtime, dashboard_section
from prism_mcp.store import EmbeddedValkey, Store
from tests.monitoring_support import call

_FAIL_FLAG = "test.dashboard.fail"


@dashboard_section("test_probe")
async def _probe(runtime: Runtime) -> dict[str, object]:
    if runtime.state.get(_FAIL_FLAG):
        raise RuntimeError("probe broke")
    return {"probe": "ok"}


async def test_dashboard_gathers_health_metrics_requests_alerts_and_plugged_sections(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await alerts.fire(
        runtime.store,
        fingerprint="test:dash",
        category="system",
        severity="critical",
        title="t",
        message="m",
        source="t",
    )
    await api.get("/monitoring/metrics")

    data = (await api.get("/monitoring/dashboard")).json()["data"]

    assert data["health"]["overall_status"] in {"healthy", "degraded", "unhealthy"}
    assert 0 <= data["metrics"]["cpu_percent"] <= 100
    assert data["requests"]["windows"]["1m"]["requests"] >= 1
    assert (data["alerts"]["firing"], data["alerts"]["by_severity"]["critical"]) == (1, 1)
    assert data["sections"]["test_probe"] == {"probe": "ok"}
    assert (data["unavailable"], data["cached"]) == ({}, False)


async def test_dashboard_is_served_from_the_cache_until_the_cache_is_cleared(api: httpx.AsyncClient) -> None:
    cold = (await api.get("/monitoring/dashboard")).json()["data"]
    warm = (await api.get("/monitoring/dashboard")).json()["data"]
    cleared = (await api.post("/performance/cache/clear")).json()["data"]
    again = (await api.get("/monitoring/dashboard")).json()["data"]
    stats = (await api.get("/performance/stats")).json()["data"]

    assert (cold["cached"], warm["cached"], again["cached"]) == (False, True, False)
    assert warm["generated_at"] == cold["generated_at"]
    assert cleared["removed"] == 1
    assert stats["cache"]["dashboard"] == {"hits": 1, "misses": 2, "hit_rate_percent": 33.33}


async def test_a_failing_section_is_named_and_does_not_fail_the_dashboard(runtime: Runtime) -> None:
    runtime.state[_FAIL_FLAG] = True
    first = await call(runtime, "monitoring_dashboard")
    second = await call(runtime, "monitoring_dashboard")

    assert first.sections["test_probe"] is None
    assert first.unavailable == {"test_probe": "failed; see the server log"}
    assert second.cached is False  # an incomplete answer is not cached


async def test_dashboard_still_answers_while_redis_is_down(runtime: Runtime, tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path / "own")
    url = await asyncio.to_thread(valkey.start)
    own = Runtime(runtime.settings, Store(url, prefix="t:", timeout=1.0), services=frozenset({"cli"}))
    try:
        await call(own, "monitoring_dashboard")
        await asyncio.to_thread(valkey.stop)
        down = await call(own, "monitoring_dashboard")
    finally:
        await own.store.close()
        await asyncio.to_thread(valkey.stop)

    assert down.health.overall_status == "unhealthy"
    assert down.health.components["redis"] == "unhealthy"
    assert (down.requests, down.alerts) == (None, None)
    assert down.unavailable["requests"] == "Redis connection failed"
    assert down.cached is False
