"""Runbooks as data: complete, bound to real capabilities, and served over REST and MCP."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from prism_mcp.capability import Registry, registry, validate_arguments
from prism_mcp.resources.runbook import Runbook, load_runbooks, verify_runbooks
from tests.conftest import ADMIN_KEY
from tests.mcp_client import mcp_client

GUIDE_PROCEDURES = {
    "connection-refused",
    "invalid-api-key",
    "notion-api-error",
    "redis-connection-failed",
    "high-cpu",
    "high-memory",
    "slow-responses",
    "error-rate",
    "rate-limit-exceeded",
    "security-alerts",
    "daily-maintenance",
    "weekly-maintenance",
    "monthly-maintenance",
    "backup-and-recovery",
    "emergency-stop",
    "staged-recovery",
}


def test_every_procedure_of_the_guide_has_a_runbook() -> None:
    assert set(load_runbooks()) == GUIDE_PROCEDURES


def test_runbooks_quote_the_guides_error_messages_exactly() -> None:
    books = load_runbooks()
    assert books["connection-refused"].messages == ["Connection refused"]
    assert books["invalid-api-key"].messages == ["Invalid API key"]
    assert books["notion-api-error"].messages == ["Notion API error"]
    assert books["redis-connection-failed"].messages == ["Redis connection failed"]
    assert books["rate-limit-exceeded"].messages == ["Rate limit exceeded"]


def test_each_runbooks_capability_steps_exist_in_the_registry_and_validate() -> None:
    checked = 0
    for book in load_runbooks().values():
        for name, arguments in book.capability_refs():
            cap = registry.get(name)
            assert cap is not None, (book.id, name)
            validate_arguments(cap, arguments)
            checked += 1
    assert checked >= 10


def test_a_step_must_be_either_a_capability_or_a_command() -> None:
    base = json.loads(Runbook.model_validate(load_runbooks()["high-cpu"]).model_dump_json())
    both = base | {"steps": [{"title": "x", "capability": "health_detailed", "command": "docker stats"}]}
    with pytest.raises(ValidationError, match="exactly one of"):
        Runbook.model_validate(both)


def test_a_runbook_naming_an_unknown_capability_or_bad_arguments_stops_start_up() -> None:
    scratch = Registry()
    for cap in registry:
        if cap.name != "logs_archive":
            scratch.add(cap)
    with pytest.raises(ValueError, match="names 'logs_archive', which no PRISM capability is"):
        verify_runbooks(scratch)


def test_shell_steps_are_the_guides_commands() -> None:
    commands = {s.command for b in load_runbooks().values() for s in b.steps if s.command}
    assert "docker compose restart PRISM-Redis" in commands
    assert "docker exec -it PRISM-Redis redis-cli ping" in commands
    assert "docker exec -it PRISM-Redis redis-cli memory purge" in commands
    assert "docker compose up -d PRISM-NOTIFIER" in commands


async def test_rest_lists_runbooks_and_serves_one_by_id(api: httpx.AsyncClient) -> None:
    listing = (await api.get("/runbooks")).json()["data"]["runbooks"]
    one = (await api.get("/runbooks/redis-connection-failed")).json()["data"]
    missing = await api.get("/runbooks/no-such-book")
    bad = await api.get("/runbooks/NOT_AN_ID")
    assert {b["id"] for b in listing} == GUIDE_PROCEDURES
    assert one["messages"] == ["Redis connection failed"]
    assert one["steps"][1] == {
        "title": "Restart Redis.",
        "capability": None,
        "arguments": {},
        "command": "docker compose restart PRISM-Redis",
    }
    assert missing.status_code == 404
    assert "known runbooks: " in missing.json()["error"]["message"]
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "runbook_id"


async def test_mcp_reads_a_runbook_as_a_template_resource_and_through_read_resource(mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        resource = await client.read_resource("prism://runbooks/high-cpu")
        listing = await client.read_resource("prism://runbooks")
        tool = await client.call_tool("read_resource", {"uri": "prism://runbooks/daily-maintenance"})
    assert "prism://runbooks/{runbook_id}" in templates
    assert json.loads(resource.contents[0].text)["id"] == "high-cpu"  # type: ignore[union-attr]
    assert len(json.loads(listing.contents[0].text)["runbooks"]) == len(GUIDE_PROCEDURES)  # type: ignore[union-attr]
    assert tool.structured_content is not None
    assert tool.structured_content["data"]["steps"][0]["arguments"] == {"days_old": 7}
