"""Small helpers the security tests share: clients bound to another loopback address, bounded polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from prism_mcp.runtime import Runtime
from prism_mcp.security_events import SecurityEvent, read_events
from tests.conftest import ADMIN_KEY

T = TypeVar("T")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client_from(address: str, base_url: str, key: str | None = None) -> httpx.AsyncClient:
    """An HTTP client whose requests leave from ``address`` (a loopback address such as 127.0.0.2)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, headers=bearer(key) if key else {}, timeout=10)


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


async def events_of(api_url: str, type: str, **params: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_KEY), timeout=10) as client:
        response = await client.get("/security/events", params={"type": type, "limit": 1000, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]["events"]
    return events


MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def stored_events(runtime: Runtime, type: str) -> list[SecurityEvent]:
    """The events of ``type`` as stored, read from Redis directly (for clients the door now refuses)."""
    return await read_events(runtime.store, limit=1000, type=type)
