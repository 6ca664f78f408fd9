"""Keys and scopes on both surfaces, every capability taken from the registry.

The scope matrix sends an unknown extra parameter: invoke checks the scope before the arguments, so an
allowed call stops at a validation error (nothing runs) and a denied one gets 403.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from prism_mcp.capability import Capability, Scope, registry
from tests.conftest import ADMIN_KEY, OPERATOR_KEY, READ_KEY
from tests.mcp_client import mcp_client
from tests.security.helpers import MCP_HEADERS

KEYS = {Scope.READ: READ_KEY, Scope.OPERATE: OPERATOR_KEY, Scope.ADMIN: ADMIN_KEY}
REFUSED: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("no key", {}, {}),
    ("wrong key", {"Authorization": "Bearer wrong-key"}, {}),
    ("basic", {"Authorization": f"Basic {READ_KEY}"}, {}),
    ("query key", {}, {"api_key": ADMIN_KEY}),
]
PROBE = "scope_probe_unknown_parameter"


def _tool_call(cap: Capability, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": cap.name, "arguments": arguments}}


@pytest.mark.parametrize(("label", "headers", "params"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_every_route_refuses_missing_wrong_basic_and_query_keys_on_rest(
    api_url: str, label: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        for cap in registry:
            response = await client.request(cap.method, cap.path, headers=headers, params=params)
            assert response.status_code == 401, (label, cap.name)
            assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("label", "headers", "params"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_every_tool_refuses_missing_wrong_basic_and_query_keys_on_mcp(
    mcp_url: str, label: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    async with httpx.AsyncClient(headers=MCP_HEADERS) as client:
        for cap in registry:
            response = await client.post(mcp_url, headers=headers, params=params, json=_tool_call(cap, {}))
            assert response.status_code == 401, (label, cap.name)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scope", list(Scope))
async def test_scope_matrix_on_rest(api_url: str, scope: Scope) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {KEYS[scope]}"}) as client:
        for cap in registry:
            response = await client.request(cap.method, cap.path, params={PROBE: "1"})
            expected = 422 if scope.rank >= cap.scope.rank else 403
            assert response.status_code == expected, (scope, cap.name, response.text)


@pytest.mark.parametrize("scope", list(Scope))
async def test_scope_matrix_on_mcp(mcp_url: str, scope: Scope) -> None:
    async with mcp_client(mcp_url, KEYS[scope]) as client:
        for cap in registry:
            allowed = scope.rank >= cap.scope.rank
            if cap.is_resource:
                text = await _read(client, cap)
                assert ("needs the" in text) is not allowed, (scope, cap.name, text)
                continue
            result = await client.call_tool(cap.name, {PROBE: 1})
            message = result.content[0].text  # type: ignore[union-attr]
            assert result.is_error, (scope, cap.name)
            assert (f"needs the {cap.scope.value} scope" in message) is not allowed, (scope, cap.name, message)


async def _read(client: Any, cap: Capability) -> str:
    try:
        result = await client.read_resource(cap.resource_uri)
    except Exception as exc:  # the SDK raises its own error type for a resource error
        return str(exc)
    return str(result.contents[0].text)
