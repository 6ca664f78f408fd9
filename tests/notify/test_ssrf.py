"""SSRF: every URL aimed at this machine or its networks is refused, and a loopback canary sees nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from prism_mcp.notify.settings import NotificationSettings, settings_key
from prism_mcp.runtime import Runtime
from tests.notify.receivers import Reply, WebhookReceiver
from tests.notify.test_urls import SSRF_URLS


@pytest.fixture
async def canary() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver().start()
    yield receiver
    await receiver.stop()


async def test_ssrf_urls_are_refused_at_validation_and_the_canary_sees_nothing(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, canary: WebhookReceiver
) -> None:
    redirector = await WebhookReceiver().start()
    redirector.default = Reply(302, {"Location": canary.url()})
    urls = [t.format(port=canary.port) for t in SSRF_URLS] + [redirector.url()]
    try:
        for url in urls:
            response = await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": url})
            assert response.status_code == 422, url
            assert response.json()["error"]["details"]["field"] == "slack_webhook_url", url
        settings = (await api.get("/notifications/settings")).json()["data"]
        # A sentinel through the one listed receiver: once it arrives, the notifier has had its chance.
        await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
        await api.post("/notifications/test", json={"wait_seconds": 10})
    finally:
        await redirector.stop()

    assert (settings["slack_enabled"], settings["slack_webhook_url"]) == (False, None)
    assert len(slack.arrivals) == 1
    assert canary.arrivals == []
    assert redirector.arrivals == []


async def test_a_stored_url_outside_the_allow_list_is_refused_again_at_send_time(
    api: httpx.AsyncClient, notifier: Runtime, canary: WebhookReceiver
) -> None:
    # Settings written by a process with a wider allow-list than this notifier's: the send-time check holds.
    smuggled = NotificationSettings(slack_enabled=True, slack_webhook_url=canary.url())
    await notifier.store.redis.set(settings_key(notifier.store), smuggled.model_dump_json())

    sent = (await api.post("/notifications/test", json={"wait_seconds": 10})).json()["data"]

    assert sent["results"][0]["status"] == "dead_lettered"
    assert sent["results"][0]["reason"].startswith("webhook URL refused: refused host '127.0.0.1', a loopback")
    assert "secret0token" not in json.dumps(sent)
    assert canary.arrivals == []
