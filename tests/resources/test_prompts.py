"""MCP prompts through the official client: listed with their arguments, rendered with them."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from prism_mcp import alerts
from prism_mcp.runtime import Runtime
from tests.conftest import ADMIN_KEY, READ_KEY
from tests.mcp_client import mcp_client


def text_of(result: object) -> str:
    return "\n".join(m.content.text for m in result.messages)  # type: ignore[attr-defined]


async def test_the_four_prompts_are_listed_with_their_arguments(mcp_url: str) -> None:
    async with mcp_client(mcp_url, READ_KEY) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == {"troubleshoot", "daily_maintenance", "weekly_maintenance", "incident_review"}
    assert [(a.name, a.required) for a in prompts["troubleshoot"].arguments or []] == [("symptom", True)]
    assert [(a.name, a.required) for a in prompts["incident_review"].arguments or []] == [("alert", True)]
    assert prompts["daily_maintenance"].arguments == []


async def test_troubleshoot_points_at_the_runbook_of_the_symptom(mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.get_prompt("troubleshoot", {"symptom": "every call answers Redis connection failed"})
    text = text_of(result)
    assert "Runbook redis-connection-failed" in text
    assert "shell: docker compose restart PRISM-Redis" in text
    assert 'call ops_diagnose with symptom="every call answers Redis connection failed"' in text.replace("Call", "call")


async def test_maintenance_prompts_list_the_guides_calls(mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        daily = text_of(await client.get_prompt("daily_maintenance"))
        weekly = text_of(await client.get_prompt("weekly_maintenance"))
    assert 'call logs_archive {"days_old": 7}' in daily
    assert 'call logs_cleanup {"days_old": 30}' in daily
    assert 'call security_events {"limit": 100}' in weekly


async def test_incident_review_finds_the_alert_by_fingerprint_or_id(runtime: Runtime, mcp_url: str) -> None:
    alert, _ = await alerts.fire(
        runtime.store,
        fingerprint="threshold:memory",
        category="system",
        severity="warning",
        title="High memory usage",
        message="memory at 91 %",
        source="thresholds",
        runbook="high-memory",
    )
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        by_fingerprint = text_of(await client.get_prompt("incident_review", {"alert": "threshold:memory"}))
        by_id = text_of(await client.get_prompt("incident_review", {"alert": alert.id}))
        with pytest.raises(MCPError, match="list alerts with alerts_list"):
            await client.get_prompt("incident_review", {"alert": "threshold:nothing"})
    assert by_fingerprint == by_id
    assert "Runbook high-memory" in by_id
    assert '"fingerprint": "threshold:memory"' in by_id
