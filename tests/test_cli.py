"""The ``prism`` command: ``prism up`` on a fresh data directory, ``prism call``, ``prism capabilities``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from prism_mcp.capability import registry
from prism_mcp.config import Settings
from tests.conftest import ADMIN_KEY, free_port

PRISM = [sys.executable, "-m", "prism_mcp"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k not in {"API_KEY", "REDIS_URL"}}
    return {**env, **extra}


async def _read_banner(stream: asyncio.StreamReader, until: str) -> list[str]:
    lines: list[str] = []
    while not any(until in line for line in lines):
        line = await asyncio.wait_for(stream.readline(), 30)
        if not line:
            break
        lines.append(line.decode().rstrip())
    return lines


@pytest.mark.slow
async def test_prism_up_on_a_fresh_data_dir_serves_both_ports_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, mcp_port, web_port = free_port(), free_port(), free_port()
    env = _clean_env(
        PRISM_API_PORT=str(api_port),
        PRISM_MCP_PORT=str(mcp_port),
        PRISM_WEB_PORT=str(web_port),
        PRISM_DATA_DIR=str(tmp_path / "d"),
    )
    process = await asyncio.create_subprocess_exec(
        *PRISM, "up", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        banner = await _read_banner(process.stdout, "connect Claude Code")
        key_path = tmp_path / "d" / "api_key"
        key = key_path.read_text().strip()
        valkey_pid = json.loads((tmp_path / "d" / "valkey.json").read_text())["pid"]
        async with httpx.AsyncClient(timeout=10) as client:
            alive = await client.get(f"http://127.0.0.1:{api_port}/healthz")
            health = await client.get(
                f"http://127.0.0.1:{api_port}/monitoring/health", headers={"Authorization": f"Bearer {key}"}
            )
            mcp = await client.post(f"http://127.0.0.1:{mcp_port}/mcp", json={})
            web = await client.get(f"http://127.0.0.1:{web_port}/")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)

    assert banner[1].startswith("embedded Valkey")
    assert "redis://127.0.0.1:" in banner[1]
    assert [line.strip() for line in banner].count(key) == 1  # printed once, on its own line
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert alive.json()["data"]["status"] == "ok"
    assert health.json()["data"]["components"]["redis"] == "healthy"
    assert mcp.status_code == 401
    assert (web.status_code, web.headers["location"]) == (303, "/login?next=/")
    assert any(line.startswith(f"PRISM-WEB  http://127.0.0.1:{web_port}/") for line in banner)
    assert code == 0
    assert not psutil.pid_exists(valkey_pid)
    assert not (tmp_path / "d" / "valkey.json").exists()


@pytest.mark.slow
async def test_a_second_prism_up_reuses_the_key_without_printing_it(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "api_key").write_text("kept-key-0123456789\n")
    ports = {name: str(free_port()) for name in ("PRISM_API_PORT", "PRISM_MCP_PORT", "PRISM_WEB_PORT")}
    env = _clean_env(**ports, PRISM_DATA_DIR=str(data))
    process = await asyncio.create_subprocess_exec(
        *PRISM, "up", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        banner = await _read_banner(process.stdout, "connect Claude Code")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    assert not any("kept-key-0123456789" in line for line in banner)
    assert any(line.startswith("API key kept in") for line in banner)


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *PRISM, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _call_env(settings: Settings) -> dict[str, str]:
    return _clean_env(
        API_KEY=ADMIN_KEY,
        REDIS_URL=settings.redis_url or "",
        PRISM_KEY_PREFIX=settings.key_prefix,
        PRISM_DATA_DIR=str(settings.data_path),
    )


async def test_prism_call_prints_the_result_as_json(settings: Settings) -> None:
    code, out, _ = await _run("call", "monitoring_health", env=_call_env(settings))
    assert code == 0
    assert json.loads(out)["overall_status"] in {"healthy", "degraded", "unhealthy"}


async def test_prism_call_with_bad_input_exits_non_zero_naming_the_field(settings: Settings) -> None:
    code, out, _ = await _run("call", "audit_events", "--limit", "5000", env=_call_env(settings))
    assert code == 1
    assert json.loads(out)["error"]["details"]["field"] == "limit"


async def test_prism_call_of_an_unknown_capability_says_where_to_look(settings: Settings) -> None:
    code, _, err = await _run("call", "no_such_thing", env=_call_env(settings))
    assert code == 2
    assert "prism capabilities" in err


async def test_prism_capabilities_lists_every_capability(settings: Settings) -> None:
    code, out, _ = await _run("capabilities", env=_clean_env(COLUMNS="250"))
    assert code == 0
    for cap in registry:
        assert cap.name in out


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PRISM_API_PORT", "eighty"), ("PRISM_MCP_PORT", "70000"), ("REDIS_URL", "http://x"), ("PRISM_CPU_WARNING", "0")],
)
async def test_a_bad_setting_stops_start_up_with_one_line_naming_it(variable: str, value: str) -> None:
    code, out, err = await _run("serve", "api", env=_clean_env(API_KEY="k", **{variable: value}))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"prism: {variable}: ")


async def test_serve_requires_an_api_key(tmp_path: Path) -> None:
    code, _, err = await _run("serve", "api", env=_clean_env(PRISM_DATA_DIR=str(tmp_path)))
    assert code == 2
    assert "API_KEY" in err
