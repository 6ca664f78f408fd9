"""PRISM-NOTIFIER against a local Slack webhook and a local SMTP server, on a real Redis."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from prism_mcp.alerts import fire, resolve
from prism_mcp.runtime import Runtime
from tests.notify.conftest import enable_both
from tests.notify.receivers import MailReceiver, Reply, WebhookReceiver, wait_until


async def _fire(runtime: Runtime, fingerprint: str = "threshold:cpu", **overrides: str) -> str:
    fields = {"category": "system", "severity": "critical", "title": f"{fingerprint} high", "message": "at 97 %"}
    fields.update(overrides)
    alert, _ = await fire(runtime.store, fingerprint=fingerprint, source="test", **fields)
    return alert.id


async def _history(api: httpx.AsyncClient, **params: object) -> dict[str, object]:
    response = await api.get("/notifications/history", params=params)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def _outcome(api: httpx.AsyncClient, event_id: str, timeout: float = 15.0) -> dict[str, object]:
    """The final history entry (delivered or dead-lettered) of one outbox entry, polled with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = (await _history(api, limit=200))["entries"]
        final = [e for e in entries if e["event_id"] == event_id and e["status"] != "failed"]
        if final:
            return final[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no outcome for {event_id} within {timeout:g} s")


async def test_a_test_notification_arrives_on_each_channel(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack)

    response = await api.post("/notifications/test", json={"wait_seconds": 15})

    data = response.json()["data"]
    assert response.status_code == 200
    assert sorted(r["channel"] for r in data["results"]) == ["email", "slack"]
    assert {r["status"] for r in data["results"]} == {"delivered"}
    assert slack.texts() == [":information_source: PRISM test notification"]
    assert mail.subjects() == ["PRISM test notification"]
    assert mail.messages[0][0] == ["admin@example.com"]


async def test_a_test_of_a_disabled_channel_is_refused(api: httpx.AsyncClient, slack: WebhookReceiver) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})

    response = await api.post("/notifications/test", json={"channel": "email"})

    assert response.status_code == 409
    assert "email is not enabled" in response.json()["error"]["message"]


async def test_500_then_200_is_delivered_once_after_a_retry(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
    slack.script = [Reply(500), Reply(200)]

    response = await api.post("/notifications/test", json={"wait_seconds": 15})

    history = await _history(api)
    statuses = [(e["status"], e["attempt"]) for e in history["entries"]]
    assert response.json()["data"]["results"][0]["status"] == "delivered"
    assert len(slack.arrivals) == 2
    assert statuses == [("delivered", 2), ("failed", 1)]
    assert "HTTP 500" in history["entries"][1]["reason"]


async def test_429_with_retry_after_makes_the_next_try_wait(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
    slack.script = [Reply(429, {"Retry-After": "2"}), Reply(200)]

    response = await api.post("/notifications/test", json={"wait_seconds": 20})

    assert response.json()["data"]["results"][0]["status"] == "delivered"
    first, second = slack.arrivals
    # Behaviour, not speed: the retry honoured the two seconds the receiver asked for (backoff alone is 0.05 s).
    assert second.at - first.at >= 1.9


async def test_one_alert_fired_100_times_in_an_interval_sends_one_notification(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})

    for _ in range(100):
        await _fire(notifier)
    await _fire(notifier, "threshold:disk", title="sentinel")
    await wait_until(lambda: any("sentinel" in t for t in slack.texts()), what="the sentinel alert")

    history = await _history(api)
    assert [t for t in slack.texts() if "threshold:cpu" in t] == [":red_circle: [CRITICAL] threshold:cpu high"]
    assert history["stats"]["suppressed"] == 99


async def test_a_resolve_is_announced_once_and_a_refire_starts_a_new_interval(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})

    aid = await _fire(notifier)
    await resolve(notifier.store, aid, by="test")
    await resolve(notifier.store, aid, by="test")
    await _fire(notifier)
    await wait_until(lambda: len(slack.arrivals) >= 3, what="three notifications")

    assert [t.split(" ", 1)[1] for t in slack.texts()] == [
        "[CRITICAL] threshold:cpu high",
        "[RESOLVED] threshold:cpu high",
        "[CRITICAL] threshold:cpu high",
    ]


async def test_routing_follows_category_and_minimum_severity(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    await api.put(
        "/notifications/settings",
        json={
            "slack_enabled": True,
            "slack_webhook_url": slack.url(),
            "performance_alerts": False,
            "min_severity": "critical",
        },
    )

    await _fire(notifier, "perf:latency", category="performance")
    await _fire(notifier, "threshold:memory", severity="warning")
    await _fire(notifier, "security:brute_force", category="security", title="sentinel")
    await wait_until(lambda: len(slack.arrivals) >= 1, what="the security alert")

    assert slack.texts() == [":red_circle: [CRITICAL] sentinel"]


async def test_a_dead_channel_is_dead_lettered_and_a_retry_delivers_it(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack)
    slack.default = Reply(503)

    sent = (await api.post("/notifications/test", json={"wait_seconds": 15})).json()["data"]
    dead = await _history(api, status="dead_lettered")
    slack.default = Reply(200)
    retried = (await api.post("/notifications/retry", json={"all": True})).json()["data"]
    outcome = await _outcome(api, retried["event_ids"][0])
    after = await _history(api)

    assert {r["channel"]: r["status"] for r in sent["results"]} == {"slack": "dead_lettered", "email": "delivered"}
    assert dead["entries"][0]["reason"] == "HTTP 503 from the webhook"
    assert dead["dead_letters"][0]["tries"] == 3
    assert retried["queued"] == [dead["dead_letters"][0]["id"]]
    assert (outcome["channel"], outcome["status"]) == ("slack", "delivered")
    assert after["dead_letters"] == []
    assert "secret0token" not in json.dumps([dead, after])
    assert len(slack.arrivals) == 4
    assert len(mail.messages) == 1


async def test_retry_needs_ids_or_all_and_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    neither = await api.post("/notifications/retry")
    unknown = await api.post("/notifications/retry", json={"ids": ["dl-nothing"]})

    assert (neither.status_code, neither.json()["error"]["details"]["field"]) == (422, "ids")
    assert unknown.status_code == 404


async def test_a_redirect_is_not_followed_and_its_target_sees_nothing(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver
) -> None:
    canary = await WebhookReceiver().start()
    try:
        await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
        slack.default = Reply(307, {"Location": canary.url()})

        sent = (await api.post("/notifications/test", json={"wait_seconds": 15})).json()["data"]

        assert sent["results"][0]["status"] == "dead_lettered"
        assert "redirects are not followed" in sent["results"][0]["reason"]
        assert len(slack.arrivals) == 1
        assert canary.arrivals == []
    finally:
        await canary.stop()


async def test_a_slow_slack_does_not_hold_up_email(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack)
    slack.default = Reply(200, delay=3.0)

    await _fire(notifier)
    await wait_until(lambda: len(mail.messages) == 1, what="the email")
    slack_answered_when_mail_arrived = slack.answered
    await wait_until(lambda: slack.answered == 1, what="the slow Slack answer")

    assert slack_answered_when_mail_arrived == 0
    assert mail.subjects() == ["[CRITICAL] threshold:cpu high"]


async def test_an_alert_email_has_text_and_html_parts(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack)

    await _fire(notifier, title="Disk <almost> full", fingerprint="threshold:disk")
    await wait_until(lambda: len(mail.messages) == 1, what="the email")

    message = mail.messages[0][1]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Disk <almost> full" in text.get_content()
    assert "Disk &lt;almost&gt; full" in html.get_content()
    assert message["From"] == "prism@example.com"


async def test_a_dead_smtp_server_is_dead_lettered_while_slack_is_delivered(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack)
    mail.stop()

    sent = (await api.post("/notifications/test", json={"wait_seconds": 15})).json()["data"]
    history = await _history(api, limit=10)

    outcomes = {r["channel"]: (r["status"], r["reason"]) for r in sent["results"]}
    assert outcomes["slack"] == ("delivered", None)
    assert outcomes["email"][0] == "dead_lettered"
    assert outcomes["email"][1].startswith("SMTP connection failed")
    assert [e["attempt"] for e in history["entries"] if e["channel"] == "email"] == [3, 2, 1]
