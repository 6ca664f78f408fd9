"""Redis going away under the doors: the local rate limiter takes over, the block list keeps its snapshot.

The test's own Valkey sits behind a small TCP relay on loopback; closing the relay is Redis going down for
PRISM (connections refused, open ones cut), opening it again on the same port is Redis coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from prism_mcp.alerts import alert_id, get_alert
from prism_mcp.config import Settings
from prism_mcp.http_bridge import build_api_app
from prism_mcp.runtime import Runtime
from prism_mcp.security.ratelimit import FALLBACK_ALERT
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import EmbeddedValkey, Store
from tests.conftest import ADMIN_KEY, READ_KEY, free_port
from tests.security.helpers import bearer, client_from, eventually


class Relay:
    """Forwards loopback connections on ``port`` to the Valkey at ``target``; can be cut and restored."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self.writers.discard(writer)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    url = await asyncio.to_thread(valkey.start)
    relay = Relay(int(url.rsplit(":", 1)[1].split("/")[0]))
    await relay.open()
    yield relay
    await relay.cut()
    await asyncio.to_thread(valkey.stop)


@pytest.fixture
async def outage_api(settings: Settings, relay: Relay) -> AsyncIterator[tuple[str, Runtime]]:
    settings = settings.model_copy(update={"rate_limit": "3/minute", "redis_timeout": 0.5})
    store = Store(f"redis://127.0.0.1:{relay.port}/0", prefix=settings.key_prefix, timeout=0.5)
    runtime = Runtime(settings, store, services=frozenset({"api"}))
    await runtime.start()
    port = free_port()
    server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
    yield f"http://127.0.0.1:{port}", runtime
    server.should_exit = True
    await task
    await runtime.stop()


async def test_rate_limits_fall_back_to_the_process_and_the_alert_fires_and_resolves(
    outage_api: tuple[str, Runtime], relay: Relay
) -> None:
    api_url, runtime = outage_api
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY)) as client:
        assert (await client.get("/monitoring/metrics")).status_code == 200
        await relay.cut()
        during = [(await client.get("/monitoring/metrics")).status_code for _ in range(4)]
        await relay.open()

        async def recovered() -> bool:
            alert = await get_alert(runtime.store, alert_id(FALLBACK_ALERT))
            return alert is not None and alert.status == "resolved"

        await eventually(recovered, within=10)
        after = await client.get("/monitoring/metrics")
    assert during == [200, 200, 200, 429]
    # Back on Redis, which counted only the request made before the outage.
    assert (after.status_code, after.headers["X-RateLimit-Remaining"]) == (200, "1")
    alert = await get_alert(runtime.store, alert_id(FALLBACK_ALERT))
    assert alert is not None
    assert alert.category == "security"


async def test_the_block_list_keeps_working_from_its_snapshot_while_redis_is_down(
    outage_api: tuple[str, Runtime], relay: Relay
) -> None:
    api_url, _ = outage_api
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_KEY)) as admin:
        blocked = await admin.post("/security/ips/action", json={"action": "block", "ip_address": "127.0.0.2"})
        assert blocked.status_code == 200
    await relay.cut()
    async with client_from("127.0.0.2", api_url, READ_KEY) as client:
        assert (await client.get("/monitoring/metrics")).status_code == 403
    await relay.open()
