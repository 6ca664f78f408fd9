"""Heartbeats in Redis and the `heartbeats` health component, on real runtimes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from prism_mcp.worker.heartbeat import beat, heartbeats_health


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"heartbeat_interval": 0.2})


@pytest.fixture
async def notifier(fast_settings: Settings) -> AsyncIterator[Runtime]:
    assert fast_settings.redis_url is not None
    store = Store(fast_settings.redis_url, prefix=fast_settings.key_prefix)
    runtime = Runtime(fast_settings, store, services=frozenset({"notifier"}))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def _health_until(runtime: Runtime, status: str, seconds: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        component = await heartbeats_health(runtime)
        if component is not None and component.status == status:
            return component.model_dump()
        if time.monotonic() > deadline:
            raise AssertionError(f"heartbeats never became {status}: {component}")
        await asyncio.sleep(0.1)


async def test_a_service_never_seen_is_not_reported(api: httpx.AsyncClient) -> None:
    body = (await api.get("/healthz/detailed")).json()["data"]
    assert "heartbeats" not in [c["name"] for c in body["components"]]


async def test_a_running_notifier_shows_alive_and_a_clean_stop_is_forgotten(notifier: Runtime) -> None:
    component = await _health_until(notifier, "healthy")
    processes = component["details"]["notifier"]  # type: ignore[index]
    assert [p["state"] for p in processes] == ["alive"]

    await notifier.stop()
    notifier.store = Store(notifier.settings.redis_url or "", prefix=notifier.settings.key_prefix)
    try:
        assert await heartbeats_health(notifier) is None
    finally:
        await notifier.store.close()


async def test_a_stale_heartbeat_makes_health_degraded_with_the_reason(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"heartbeat_interval": 0.2})
    await beat(runtime, ["worker"], "elsewhere:4242")

    component = await _health_until(runtime, "degraded")
    health = (await api.get("/monitoring/health")).json()["data"]

    assert "worker elsewhere:4242 stale" in str(component["reason"])
    assert health["overall_status"] != "healthy"
    assert any("elsewhere:4242 stale" in reason for reason in health["reasons"])


async def test_a_process_whose_heartbeat_expired_is_reported_missing(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"heartbeat_interval": 0.1})
    await beat(runtime, ["notifier"], "gone:1")

    component = await _health_until(runtime, "degraded")
    deadline = time.monotonic() + 10
    while "missing" not in str(component["reason"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        component = (await heartbeats_health(runtime)).model_dump()  # type: ignore[union-attr]

    assert "notifier gone:1 missing" in str(component["reason"])
