"""``prism mcp --stdio`` as a desktop client starts it: the official client over stdio, and a pure stdout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from prism_mcp.config import Settings
from tests.conftest import ADMIN_KEY, READ_KEY


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "API_KEY": ADMIN_KEY,
        "PRISM_READ_KEYS": READ_KEY,
        "REDIS_URL": settings.redis_url or "",
        "PRISM_KEY_PREFIX": settings.key_prefix,
        "PRISM_DATA_DIR": str(settings.data_path),
    }


async def test_official_client_lists_and_calls_over_stdio(settings: Settings) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "prism_mcp", "mcp", "--stdio"], env=_env(settings)
    )
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        health = await client.read_resource("prism://monitoring/health")
        audit = await client.call_tool("audit_events", {"limit": 0})
    assert {"read_resource", "audit_events"} <= tools
    assert json.loads(health.contents[0].text)["overall_status"] in {"healthy", "degraded", "unhealthy"}
    assert audit.is_error is True
    assert audit.content[0].text.startswith("limit: ")  # type: ignore[union-attr]


async def _exchange(settings: Settings, messages: list[dict[str, object]]) -> tuple[list[str], str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prism_mcp",
        "mcp",
        "--stdio",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(settings),
        cwd=str(Path(settings.data_path).parent),
    )
    assert process.stdin
    assert process.stdout
    payload = "".join(json.dumps(m) + "\n" for m in messages).encode()
    process.stdin.write(payload)
    await process.stdin.drain()
    lines: list[str] = []
    while len(lines) < 2:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            break
        lines.append(line.decode())
    process.stdin.close()
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return lines, stderr.decode()


async def test_stdout_carries_only_json_rpc(settings: Settings) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    messages = [
        init,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    lines, _ = await _exchange(settings, messages)
    assert len(lines) == 2
    replies = [json.loads(line) for line in lines]
    assert [r["id"] for r in replies] == [1, 2]
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    assert any(t["name"] == "read_resource" for t in replies[1]["result"]["tools"])


async def test_stdio_refuses_to_start_without_a_key(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in _env(settings).items() if k != "API_KEY"}
    env["PRISM_DATA_DIR"] = str(tmp_path / "empty")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prism_mcp",
        "mcp",
        "--stdio",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert stdout == b""
    assert stderr.decode().startswith("prism: API_KEY: not set")
