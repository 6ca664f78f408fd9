"""The MCP server over Streamable HTTP, exercised with the official SDK client."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from prism_mcp.runtime import Runtime
from tests.conftest import ADMIN_KEY, READ_KEY
from tests.mcp_client import mcp_client

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_resource_reads_return_the_same_model_as_rest(mcp_url: str, api: httpx.AsyncClient) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.read_resource("prism://monitoring/health")
    mcp_data = json.loads(result.contents[0].text)  # type: ignore[union-attr]
    rest_data = (await api.get("/monitoring/health")).json()["data"]
    assert set(mcp_data) == set(rest_data)
    assert mcp_data["overall_status"] in {"healthy", "degraded", "unhealthy"}


async def test_read_resource_tool_serves_tool_only_clients(mcp_url: str) -> None:
    async with mcp_client(mcp_url, READ_KEY) as client:
        result = await client.call_tool("read_resource", {"uri": "prism://monitoring/metrics"})
    assert result.is_error is False
    assert result.structured_content is not None
    assert 0 <= result.structured_content["data"]["cpu_percent"] <= 100


async def test_bad_tool_arguments_get_the_rest_message_naming_the_field(mcp_url: str, api: httpx.AsyncClient) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.call_tool("audit_events", {"limit": 0})
        unknown = await client.call_tool("audit_events", {"limt": 5})
    rest = (await api.get("/audit/events", params={"limit": 0})).json()["error"]["message"]
    assert result.is_error is True
    assert result.content[0].text == rest  # type: ignore[union-attr]
    assert rest.startswith("limit: Input should be greater than or equal to 1")
    assert unknown.is_error is True
    assert unknown.content[0].text.startswith("limt: unknown parameter")  # type: ignore[union-attr]


async def test_a_scope_denial_is_a_tool_error_with_the_rest_message(mcp_url: str) -> None:
    async with mcp_client(mcp_url, READ_KEY) as client:
        result = await client.call_tool("audit_events", {})
    assert result.is_error is True
    assert result.content[0].text == "audit_events needs the operate scope; this key has read"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", f"Basic {ADMIN_KEY}", "Bearer", f"Token {ADMIN_KEY}"]
)
async def test_mcp_endpoint_refuses_missing_or_wrong_keys_with_401(mcp_url: str, authorization: str | None) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient() as client:
        response = await client.post(mcp_url, json=INIT, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid API key"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_idle_get_stream_is_refused_so_it_cannot_hold_shutdown(mcp_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(mcp_url, headers={"Authorization": f"Bearer {ADMIN_KEY}", **MCP_HEADERS})
    assert response.status_code == 405


async def test_foreign_host_header_is_refused(mcp_url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Host": "evil.example:8062", **MCP_HEADERS}
    async with httpx.AsyncClient() as client:
        response = await client.post(mcp_url, json=INIT, headers=headers)
    assert response.status_code == 421


async def test_concurrent_calls_under_two_keys_keep_their_own_principal(mcp_url: str, runtime: Runtime) -> None:
    async def audit_as(key: str) -> list[bool]:
        async with mcp_client(mcp_url, key) as client:
            results = await asyncio.gather(*(client.call_tool("audit_events", {"limit": 1}) for _ in range(10)))
        return [bool(r.is_error) for r in results]

    admin, reader = await asyncio.gather(audit_as(ADMIN_KEY), audit_as(READ_KEY))
    assert admin == [False] * 10
    assert reader == [True] * 10


async def test_mcp_port_answers_liveness_without_a_key(mcp_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(mcp_url.removesuffix("/mcp") + "/healthz")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "ok"
