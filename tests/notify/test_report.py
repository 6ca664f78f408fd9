"""The daily report as people receive it: a Slack message and an email with text and HTML parts."""

from __future__ import annotations

import httpx

from prism_mcp.alerts import fire, resolve
from prism_mcp.notify.report import summarise
from prism_mcp.runtime import Runtime
from tests.notify.conftest import enable_both
from tests.notify.receivers import MailReceiver, WebhookReceiver, wait_until


async def test_the_daily_report_reaches_slack_and_email_with_text_and_html(
    api: httpx.AsyncClient, notifier: Runtime, slack: WebhookReceiver, mail: MailReceiver
) -> None:
    await enable_both(api, slack, daily_reports=True, min_severity="critical")
    opened, _ = await fire(
        notifier.store,
        fingerprint="threshold:cpu",
        category="system",
        severity="warning",
        title="CPU high",
        message="CPU at 85 %",
        source="test",
    )
    await resolve(notifier.store, opened.id, by="test")
    await fire(
        notifier.store,
        fingerprint="threshold:disk",
        category="system",
        severity="warning",
        title="Disk filling",
        message="disk at 88 %",
        source="test",
    )

    queued = (await api.post("/notifications/daily-report")).json()["data"]
    await wait_until(lambda: len(mail.messages) == 1 and len(slack.arrivals) == 1, what="the report")

    message = mail.messages[0][1]
    text_part = message.get_body(("plain",))
    html = message.get_body(("html",))
    slack_sections = [b["text"]["text"] for b in slack.arrivals[0].body["blocks"] if b["type"] == "section"]
    assert queued["queued"] is True
    assert str(message["Subject"]).startswith("PRISM daily report ")
    assert text_part is not None
    assert html is not None
    text = text_part.get_content().replace("\r\n", "\n")
    assert "Alerts (last 24 h)\n  - opened: 2\n  - resolved: 1\n  - firing now: 1" in text
    assert "firing: [warning] Disk filling (system, seen 1x)" in text
    assert "<h3>Health</h3>" in html.get_content()
    assert "<h3>Security</h3>" in html.get_content()
    assert slack.texts()[0].startswith(":bar_chart: PRISM daily report ")
    assert [s.split("\n", 1)[0] for s in slack_sections[1:]] == [
        "*Health*",
        "*Alerts (last 24 h)*",
        "*Logs (last 24 h)*",
        "*Security*",
    ]


def test_a_section_from_another_area_is_summarised_one_level_deep() -> None:
    answer = {
        "total": 120,
        "by_level": {"INFO": 100, "ERROR": 20},
        "top_sources": [{"name": "api"}, {"name": "worker"}],
        "per_hour": {str(h): {"n": h} for h in range(24)},
    }

    assert summarise(answer) == [
        "total: 120",
        "by level: INFO 100, ERROR 20",
        "top sources: 2 items",
        "per hour: 24 entries",
    ]
