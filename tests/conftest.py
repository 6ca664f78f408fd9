"""Shared fixtures: a real Redis or Valkey, a started runtime, and real servers on loopback.

``REDIS_URL`` set: the suite runs against that server. Unset: it starts one embedded Valkey for the session.
Every test gets its own key prefix, so tests never see each other's state.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from prism_mcp.capability import Principal, Scope
from prism_mcp.config import Settings, load_settings
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.tools import load_all

ADMIN_KEY = "test-admin-key-0123456789"
OPERATOR_KEY = "test-operator-key-0123456789"
READ_KEY = "test-read-key-0123456789"
ADMIN = Principal("test-admin", Scope.ADMIN, "k:admin")
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}

load_all()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    valkey = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    yield valkey.start()
    valkey.stop()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    return load_settings(
        API_KEY=ADMIN_KEY,
        PRISM_OPERATOR_KEYS=OPERATOR_KEY,
        PRISM_READ_KEYS=READ_KEY,
        REDIS_URL=redis_url,
        PRISM_DATA_DIR=str(tmp_path / "data"),
        PRISM_KEY_PREFIX=f"t{uuid.uuid4().hex[:10]}:",
        PRISM_SAMPLE_INTERVAL=0.2,
        # Tests send many requests, and many wrong keys, from one address: the security tests that exercise
        # the limits set their own.
        PRISM_RATE_LIMIT="100000/minute",
        PRISM_AUTH_FAILURE_LIMIT="100000/minute",
    )


async def _drop_prefix(store: Store) -> None:
    keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*", count=500)]
    if keys:
        await store.redis.unlink(*keys)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    assert settings.redis_url is not None
    store = Store(settings.redis_url, prefix=settings.key_prefix, timeout=settings.redis_timeout)
    rt = Runtime(settings, store, services=frozenset({"api", "mcp"}))
    await rt.start()
    yield rt
    await _drop_prefix(store)
    await rt.stop()


@pytest.fixture
async def api_url(runtime: Runtime) -> AsyncIterator[str]:
    from prism_mcp.http_bridge import build_api_app

    port = free_port()
    server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=HEADERS, timeout=10) as client:
        yield client


@pytest.fixture
async def mcp_url(runtime: Runtime) -> AsyncIterator[str]:
    from prism_mcp.server import mcp_http_app

    port = free_port()
    server, task = await start_server(Listener("mcp", mcp_http_app(runtime), "127.0.0.1", port))
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    await task
