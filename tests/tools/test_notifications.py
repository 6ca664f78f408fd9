"""The notification capabilities over REST and MCP: settings, validation, masking, audit, history, report."""

from __future__ import annotations

import json

import httpx

from prism_mcp.runtime import Runtime
from prism_mcp.security_events import read_events
from tests.conftest import ADMIN_KEY, OPERATOR_KEY
from tests.mcp_client import mcp_client

SECRET = "SECRETtokenXYZ0123"
GUIDE_SLACK = {
    "slack_enabled": True,
    "slack_webhook_url": f"https://hooks.slack.com/services/T0GUIDE/B0GUIDE/{SECRET}",
    "system_alerts": True,
    "performance_alerts": True,
}
GUIDE_EMAIL = {
    "email_enabled": True,
    "email_recipients": ["admin@example.com"],
    "system_alerts": True,
    "daily_reports": True,
}


async def _settings(api: httpx.AsyncClient) -> dict[str, object]:
    data: dict[str, object] = (await api.get("/notifications/settings")).json()["data"]
    return data


async def test_the_guides_two_puts_leave_both_channels_enabled(api: httpx.AsyncClient) -> None:
    first = await api.put("/notifications/settings", json=GUIDE_SLACK)
    second = await api.put("/notifications/settings", json=GUIDE_EMAIL)
    settings = await _settings(api)

    assert first.status_code == second.status_code == 200
    assert second.json()["data"]["changed"] == ["email_enabled", "email_recipients", "daily_reports"]
    assert settings["slack_enabled"] is True
    assert settings["email_enabled"] is True
    assert settings["email_recipients"] == ["admin@example.com"]
    assert settings["enabled_channels"] == ["slack", "email"]
    assert settings["slack_webhook_url"] == "https://hooks.slack.com/services/T0GUIDE/B0GUIDE/****"


async def test_a_put_may_use_the_query_string(api: httpx.AsyncClient) -> None:
    response = await api.put("/notifications/settings", params={"min_severity": "critical", "security_alerts": "false"})
    settings = await _settings(api)

    assert response.status_code == 200
    assert (settings["min_severity"], settings["security_alerts"]) == ("critical", False)


async def test_bad_fields_get_422_naming_the_field_and_change_nothing(api: httpx.AsyncClient) -> None:
    await api.put("/notifications/settings", json=GUIDE_SLACK)
    before = await _settings(api)
    bad_bodies = [
        ({"email_enabled": True, "email_recipients": ["not-an-address"]}, "email_recipients.0"),
        ({"email_recipients": ["admin@example.com\r\nBcc: x@evil.test"]}, "email_recipients.0"),
        ({"slack_webhook_url": "http://127.0.0.1:6379/", "system_alerts": False}, "slack_webhook_url"),
        ({"repeat_interval_seconds": 0}, "repeat_interval_seconds"),
        ({"min_severity": "info"}, "min_severity"),
        ({"email_enabled": True}, "email_recipients"),
        ({"slack_webhook_url": "", "daily_reports": True}, "slack_webhook_url"),
        ({"slack_enabled": True, "colour": "red"}, "colour"),
    ]

    for body, field in bad_bodies:
        response = await api.put("/notifications/settings", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"]["field"] == field, body

    assert await _settings(api) == before


async def test_settings_need_admin_to_change_but_read_scope_to_read(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as client:
        read = await client.get("/notifications/settings")
        change = await client.put("/notifications/settings", json={"daily_reports": True})

    assert read.status_code == 200
    assert change.status_code == 403


async def test_every_change_is_a_security_event_without_the_secret(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await api.put("/notifications/settings", json=GUIDE_SLACK)
    await api.put("/notifications/settings", json=GUIDE_SLACK)
    await api.put("/notifications/settings", json={"daily_reports": True})

    events = await read_events(runtime.store, type="settings_changed")
    audit = await runtime.store.redis.xrange(runtime.store.key("audit"))

    # Newest first; the repeated PUT changed nothing (system and performance alerts are on by default).
    assert [e.details["changed"] for e in events] == [["daily_reports"], ["slack_enabled", "slack_webhook_url"]]
    assert SECRET not in json.dumps([e.model_dump(mode="json") for e in events])
    assert len(audit) == 3
    assert SECRET not in json.dumps(audit)


async def test_a_refused_url_is_not_echoed_in_the_error(api: httpx.AsyncClient) -> None:
    response = await api.put(
        "/notifications/settings", json={"slack_webhook_url": f"https://hooks.slack.com/nope/{SECRET}"}
    )

    assert response.status_code == 422
    assert SECRET not in response.text


async def test_mcp_reads_the_masked_settings_and_gets_the_same_refusal(api: httpx.AsyncClient, mcp_url: str) -> None:
    await api.put("/notifications/settings", json=GUIDE_SLACK)

    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        resource = await client.read_resource("prism://notifications/settings")
        refused = await client.call_tool(
            "notifications_update_settings", {"slack_webhook_url": f"http://169.254.169.254/{SECRET}"}
        )

    text = resource.contents[0].text
    assert json.loads(text)["slack_webhook_url"].endswith("/****")
    assert SECRET not in text
    assert refused.is_error is True
    assert "link-local" in refused.content[0].text
    assert SECRET not in refused.content[0].text


async def test_history_limit_is_bounded(api: httpx.AsyncClient) -> None:
    too_many = await api.get("/notifications/history", params={"limit": 1001})
    none = await api.get("/notifications/history", params={"limit": 0})
    empty = await api.get("/notifications/history", params={"limit": 1000})

    assert too_many.status_code == none.status_code == 422
    assert empty.json()["data"] == {"entries": [], "dead_letters": [], "stats": {}}


async def test_the_daily_report_waits_for_daily_reports_or_force(api: httpx.AsyncClient) -> None:
    await api.put("/notifications/settings", json=GUIDE_SLACK)

    off = (await api.post("/notifications/daily-report")).json()["data"]
    forced = (await api.post("/notifications/daily-report", params={"force": "true"})).json()["data"]

    assert (off["queued"], off["event_id"]) == (False, None)
    assert "daily_reports is off" in off["reason"]
    assert forced["queued"] is True
    assert forced["channels"] == ["slack"]
    titles = [s["title"] for s in forced["report"]["sections"]]
    assert titles == ["Health", "Alerts (last 24 h)", "Logs (last 24 h)", "Security"]
    assert forced["report"]["sections"][0]["lines"][0].startswith("overall status: ")
