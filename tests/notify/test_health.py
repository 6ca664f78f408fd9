"""The notifier's component in the detailed health: whether one runs, and whether letters are dead."""

from __future__ import annotations

import httpx

from prism_mcp.runtime import Runtime
from tests.notify.receivers import Reply, WebhookReceiver


async def _component(api: httpx.AsyncClient) -> dict[str, object] | None:
    components = (await api.get("/healthz/detailed")).json()["data"]["components"]
    return next((c for c in components if c["name"] == "notifier"), None)


async def test_notifier_health_is_absent_until_a_channel_is_enabled(api: httpx.AsyncClient) -> None:
    assert await _component(api) is None


async def test_no_running_notifier_is_degraded(api: httpx.AsyncClient, slack: WebhookReceiver) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})

    component = await _component(api)

    assert component is not None
    assert component["status"] == "degraded"
    assert "no notifier has run" in str(component["reason"])


async def test_dead_letters_degrade_the_notifier_until_retried(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
    healthy = await _component(api)
    slack.default = Reply(410, body="channel_is_archived")

    sent = (await api.post("/notifications/test", json={"wait_seconds": 10})).json()["data"]
    dead = await _component(api)

    assert healthy is not None
    assert healthy["status"] == "healthy"
    assert sent["results"][0]["reason"] == "HTTP 410 from the webhook (channel_is_archived)"
    assert len(slack.arrivals) == 1
    assert dead is not None
    assert dead["status"] == "degraded"
    assert "1 notification(s) dead-lettered" in str(dead["reason"])
