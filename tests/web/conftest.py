"""Fixtures for the dashboard: PRISM-WEB beside the test API, a whole ``prism up``, and headless Chromium.

Pages of areas this build may lack adapt through :meth:`Prism.has`, which reads the running API's OpenAPI
document: a test of a route that is absent skips and says which route it waited for.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import Store
from prism_mcp.web import build_web_app
from tests.conftest import ADMIN_KEY, OPERATOR_KEY, READ_KEY, free_port

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, kept off the network and out of the user's profile: nothing is downloaded or synced.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
BANNER_END = "connect Claude Code"
START_SECONDS = 30
WEBHOOK_HOST = "127.0.0.1:9"


@dataclass(frozen=True, slots=True)
class Prism:
    """A running ``prism up``: its API and web URLs and the API paths it serves."""

    api: str
    web: str
    paths: frozenset[str]
    redis_url: str
    prefix: str

    def has(self, path: str) -> bool:
        return path in self.paths

    def need(self, *paths: str) -> None:
        """Skip the calling test unless every path is served (its area has landed in this build)."""
        missing = [p for p in paths if p not in self.paths]
        if missing:
            pytest.skip(f"this PRISM has no {', '.join(missing)} (its area is not merged)")


async def api_paths(api: str) -> frozenset[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        document = (await client.get(f"{api}/openapi.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"})).json()
    return frozenset(document.get("paths", {}))


def _env(redis_url: str, prefix: str, data: Path, ports: tuple[int, int, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k not in {"API_KEY", "REDIS_URL"}}
    return {
        **env,
        "API_KEY": ADMIN_KEY,
        "PRISM_OPERATOR_KEYS": OPERATOR_KEY,
        "PRISM_READ_KEYS": READ_KEY,
        "REDIS_URL": redis_url,
        "PRISM_KEY_PREFIX": prefix,
        "PRISM_DATA_DIR": str(data),
        "PRISM_API_PORT": str(ports[0]),
        "PRISM_WEB_PORT": str(ports[1]),
        "PRISM_MCP_PORT": str(ports[2]),
        "PRISM_SAMPLE_INTERVAL": "0.5",
        "PRISM_WEB_REFRESH_SECONDS": "1",
        "PRISM_LOG_LEVEL": "WARNING",
        # The settings test saves a webhook on this loopback discard port; nothing there answers.
        "PRISM_WEBHOOK_ALLOWED_HOSTS": WEBHOOK_HOST,
    }


async def _read_until(stream: asyncio.StreamReader, marker: str) -> list[str]:
    lines: list[str] = []
    while not any(marker in line for line in lines):
        line = await asyncio.wait_for(stream.readline(), START_SECONDS)
        if not line:
            raise RuntimeError("prism up exited before it was ready:\n" + "\n".join(lines))
        lines.append(line.decode().rstrip())
    return lines


@pytest.fixture(scope="module")
async def prism(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prism]:
    """One ``prism up`` for a module's browser tests, on free loopback ports and its own data directory."""
    data = tmp_path_factory.mktemp("prism-up")
    ports = (free_port(), free_port(), free_port())
    prefix = f"w{uuid.uuid4().hex[:10]}:"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prism_mcp",
        "up",
        env=_env(redis_url, prefix, data, ports),
        cwd=data,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        banner = await _read_until(process.stdout, BANNER_END)
        web = re.search(r"PRISM-WEB\s+(\S+)", "\n".join(banner))
        assert web is not None, banner
        api = f"http://127.0.0.1:{ports[0]}"
        paths = await api_paths(api)
        yield Prism(api=api, web=web.group(1).rstrip("/"), paths=paths, redis_url=redis_url, prefix=prefix)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await _drop_keys(redis_url, prefix)


async def _drop_keys(redis_url: str, prefix: str) -> None:
    """Leave the shared Redis as it was: every key the ``prism up`` wrote is under its own prefix."""
    store = Store(redis_url, prefix=prefix)
    try:
        keys = [key async for key in store.redis.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await store.redis.unlink(*keys)
    finally:
        await store.close()


@pytest.fixture
async def web_url(runtime: Runtime, api_url: str) -> AsyncIterator[str]:
    """PRISM-WEB in this process, calling the test API over loopback like any other client."""
    settings = runtime.settings.model_copy(update={"api_url": api_url})
    web_runtime = Runtime(settings, runtime.store, services=frozenset({"web"}))
    port = free_port()
    server, task = await start_server(Listener("web", build_web_app(web_runtime), "127.0.0.1", port))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser); a fresh profile per context."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` (./scripts/test does this)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")
