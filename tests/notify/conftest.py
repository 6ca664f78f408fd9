"""Fixtures for the notifier: a Slack stand-in, an SMTP stand-in, settings that admit them, a notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from tests.notify.receivers import MailReceiver, WebhookReceiver


@pytest.fixture
async def slack() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    receiver = MailReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings(settings: Settings, slack: WebhookReceiver, mail: MailReceiver) -> Settings:
    """The shared test settings, plus the local receivers and a delivery policy quick enough for tests."""
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": [slack.host_port],
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "smtp_starttls": False,
            "smtp_from": "prism@example.com",
            "notify_max_tries": 3,
            "notify_backoff_seconds": 0.05,
            "notify_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
async def notifier(runtime: Runtime, settings: Settings) -> AsyncIterator[Runtime]:
    """A PRISM-NOTIFIER in this process, on the same Redis and key prefix as ``runtime``."""
    assert settings.redis_url is not None
    store = Store(settings.redis_url, prefix=settings.key_prefix, timeout=settings.redis_timeout)
    process = Runtime(settings, store, services=frozenset({"notifier"}))
    await process.start()
    yield process
    await process.stop()


async def enable_both(api: httpx.AsyncClient, slack: WebhookReceiver, **extra: object) -> None:
    """Slack to the local receiver and email to one recipient, like the guide's two PUTs."""
    first = await api.put(
        "/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url(), **extra}
    )
    second = await api.put(
        "/notifications/settings", json={"email_enabled": True, "email_recipients": ["admin@example.com"]}
    )
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
