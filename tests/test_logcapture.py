"""Capture into Redis: one summary record per call on every surface, drops counted, never a blocked request."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from prism_mcp.capability import invoke, registry
from prism_mcp.config import Settings, load_settings
from prism_mcp.http_bridge import build_api_app
from prism_mcp.logcapture import writer_state
from prism_mcp.logsetup import CaptureSink
from prism_mcp.logstore import Filters, search_records
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import EmbeddedValkey, Store
from tests.conftest import ADMIN, ADMIN_KEY, HEADERS, free_port
from tests.mcp_client import mcp_client

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], seconds: float = 10.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


async def summaries(runtime: Runtime, request_id: str) -> list[dict[str, Any]]:
    page = await search_records(
        runtime.store, Filters(text=request_id), since_ms=0, until_ms=2**42, limit=100, cursor=None
    )
    return [r for r in page.records if r["event"] == "request_finished" and r["request_id"] == request_id]


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


async def test_a_rest_call_leaves_exactly_one_summary_record(api: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await api.get("/monitoring/logs/stats", headers={"X-Request-ID": "rest-summary-1"})
    assert response.status_code == 200

    found = await eventually(lambda: summaries(runtime, "rest-summary-1"))
    await asyncio.sleep(runtime.settings.log_flush_interval * 3)
    assert len(await summaries(runtime, "rest-summary-1")) == 1
    assert (found[0]["service"], found[0]["capability"], found[0]["level"]) == ("api", "logs_stats", "INFO")
    assert found[0]["fields"]["status"] == 200


async def test_an_mcp_call_is_attributed_to_the_mcp_service(mcp_url: str, runtime: Runtime) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        await client.call_tool("logs_search", {"q": "mcp-marker-7", "limit": 1})

    async def mcp_summary() -> list[dict[str, Any]]:
        page = await search_records(
            runtime.store, Filters(service="mcp"), since_ms=0, until_ms=2**42, limit=50, cursor=None
        )
        return [r for r in page.records if r["event"] == "request_finished" and r["capability"] == "logs_search"]

    found = await eventually(mcp_summary)
    assert found[0]["fields"]["surface"] == "mcp"


async def test_a_full_buffer_counts_drops_instead_of_waiting() -> None:
    sink = CaptureSink(capacity=100)
    for i in range(150):
        sink.offer({"event": "flood", "i": i})
    assert (len(sink.buffer), sink.dropped) == (100, 50)
    assert [e["i"] for e in sink.take(3)] == [0, 1, 2]


async def test_records_buffered_at_shutdown_are_written_before_the_store_closes(settings: Settings) -> None:
    slow = settings.model_copy(update={"log_flush_interval": 60.0})
    assert slow.redis_url is not None
    runtime = Runtime(slow, Store(slow.redis_url, prefix=slow.key_prefix), services=frozenset({"worker"}))
    await runtime.start()
    await asyncio.sleep(0.05)
    logging.getLogger("prism_mcp.test").warning("written_at_shutdown", extra={"marker": "m-42"})
    await runtime.stop()

    store = Store(slow.redis_url, prefix=slow.key_prefix)
    try:
        page = await search_records(store, Filters(text="m-42"), since_ms=0, until_ms=2**42, limit=5, cursor=None)
        assert [r["event"] for r in page.records] == ["written_at_shutdown"]
        assert page.records[0]["service"] == "prism"
    finally:
        keys = [k async for k in store.redis.scan_iter(match=slow.key_prefix + "*")]
        if keys:
            await store.redis.unlink(*keys)
        await store.close()


async def test_requests_while_redis_is_down_still_answer_and_drops_rise(tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path / "own")
    url = await asyncio.to_thread(valkey.start)
    settings = load_settings(
        API_KEY=ADMIN_KEY,
        REDIS_URL=url,
        PRISM_DATA_DIR=str(tmp_path / "data"),
        PRISM_KEY_PREFIX=f"d{uuid.uuid4().hex[:8]}:",
        PRISM_REDIS_TIMEOUT=0.5,
    )
    runtime = Runtime(settings, Store(url, prefix=settings.key_prefix, timeout=0.5), services=frozenset({"api"}))
    await runtime.start()
    port = free_port()
    server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=10) as api:
            assert (await api.get("/monitoring/logs/stats")).status_code == 200
            await asyncio.to_thread(valkey.stop)
            stopped = True

            down = await api.get("/monitoring/logs/stats")
            assert down.status_code == 503
            assert down.json()["error"]["message"] == "Redis connection failed"

            async def logs_component() -> dict[str, Any] | None:
                await api.get("/healthz/detailed")
                health = (await api.get("/healthz/detailed")).json()["data"]
                logs = next(c for c in health["components"] if c["name"] == "logs")
                return logs if logs["details"]["dropped"] > 0 else None

            logs = await eventually(logs_component)
            assert logs["status"] == "degraded"
            assert "dropped" in logs["reason"]
            state = writer_state(runtime)
            assert state is not None
            assert state.unreported_drops > 0
    finally:
        server.should_exit = True
        await task
        await runtime.stop()
        if not stopped:
            await asyncio.to_thread(valkey.stop)


async def test_calls_inside_a_capability_carry_its_request_id(runtime: Runtime) -> None:
    cap = registry.get("logs_archive")
    assert cap is not None
    await invoke(runtime, cap, ADMIN, {"days_old": 7}, surface="worker", request_id="job-run-9")
    found = await eventually(lambda: summaries(runtime, "job-run-9"))
    assert (found[0]["service"], found[0]["capability"]) == ("worker", "logs_archive")
